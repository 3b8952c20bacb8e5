"""From settings to an env factory and an agent: the one public way to build what the command builds.

    import kerlym
    run, config = kerlym.configure("CartPole-v1", "ddqn", preset=True, seed=0)
    agent = kerlym.make(run, config)
    agent.learn(max_steps=run.steps)

or, in one call, ``kerlym.make("CartPole-v1", "ddqn", preset=True, seed=0)``.
The command line (``kerlym.main``), the benchmarks and the tests all build
agents through these functions.
"""

from __future__ import annotations

import difflib
import os

from kerlym import checkpoints, factories, resources
from kerlym import config as C
from kerlym.agents import AGENT_CONFIGS, AGENTS
from kerlym.envs import GO_IDS, OPENSPIEL_PREFIX


def configure(
    env: str | None = None,
    agent: str | None = None,
    preset: bool | str = False,
    cli_defaults: bool = False,
    **settings,
) -> tuple[C.RunConfig, C.AgentConfig]:
    """The run's and the agent's configs: defaults, then the preset for ``env`` and ``agent``, then ``settings``.

    Args:
        env: Gymnasium env id (default: the command's, ``MountainCar-v0``).
        agent: ``"dqn"``, ``"ddqn"``, ``"pg"``, ``"a2c"``, ``"a3c"``, ``"ppo"`` (default ``"ddqn"``).
        preset: start from kerlym's tuned settings for this env and agent (:mod:`kerlym.presets`), or, a path,
            from a preset file (JSON or YAML of config field names, e.g. a ``--tune`` sweep's ``best_preset.json``;
            its ``env`` and ``agent``, if any, apply unless ``env`` and ``agent`` are given).
        cli_defaults: start from the command's defaults (the original KeRLym command's ``-t 2``,
            ``-o 0.5``, ``-D 1e-4``) instead of the Python API's.
        **settings: any :class:`~kerlym.config.RunConfig` or agent config field. A setting of another
            agent only is ignored (the command prints a note); an unknown name is an error. ``env_kwargs``
            add to a preset's ``env_kwargs`` (a key given replaces the preset's value) rather than replace them,
            and ``net_kwargs`` (the network factory's keyword arguments, SB3's ``policy_kwargs``) to a preset's.

    Raises:
        kerlym.config.ConfigError: an unknown name, a bad value, or a missing preset (one line).
    """
    run_defaults = {f.name: f.default for f in C.fields(C.RunConfig)}
    from_file = {}
    if isinstance(preset, str):
        from kerlym import presets

        from_file = presets.read_file(preset)
        env, agent = env or from_file.get("env"), agent or from_file.get("agent")
        from_file = {k: v for k, v in from_file.items() if k not in ("env", "agent")}
    env = env or run_defaults["env"]
    agent = agent or run_defaults["agent"]
    if agent not in AGENT_CONFIGS:
        raise C.ConfigError(f"unknown agent {agent!r}; choose one of: {', '.join(AGENT_CONFIGS)}")
    values = dict(C.defaults(AGENT_CONFIGS[agent], cli=True)) if cli_defaults else {}
    if isinstance(preset, str):
        known = C.field_names(C.RunConfig) + C.field_names(AGENT_CONFIGS[agent])
        for key in from_file:  # strict: a file's setting that this agent ignores is a mistake in the file
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                raise C.ConfigError(f"preset file {preset}: -a {agent} has no setting {key!r}{hint}")
        values.update(from_file)
    elif preset:
        from kerlym import presets

        try:
            values.update(presets.get(env, agent))
        except KeyError as e:
            raise C.ConfigError(e.args[0]) from None
    for key in ("env_kwargs", "net_kwargs"):
        if isinstance(values.get(key), dict) and isinstance(settings.get(key), dict):
            # Given kwargs add to a preset's: Go's `--preset --env-kwargs komi=0` keeps its random opponent.
            settings = {**settings, key: {**values[key], **settings[key]}}
    values.update(settings)
    if values.get("self_play") is not None and env in GO_IDS:  # the snapshots play, so GnuGo need not start
        values["env_kwargs"] = {"opponent": "random", **(values.get("env_kwargs") or {})}
    if values.get("ema_steps") == 0:  # --ema 0 turns a preset's weight average off
        values["ema_steps"] = None
    run_values, agent_values, other = split_settings(values, agent)
    unknown = sorted(k for k in other if k not in all_agent_fields())
    if unknown:
        factory = _named_factory(values.get("modelfactory"), agent)
        if factory is not None and unknown[0] in factories.named_parameters(factory):  # filters=96: a net kwarg
            raise C.ConfigError(
                f"unknown setting {unknown[0]!r}: it is an argument of {factories.factory_name(factory)}; pass "
                f"net_kwargs={{{unknown[0]!r}: ...}} (the command's --net-kwargs {unknown[0]}=...)"
            )
        known = sorted(C.field_names(C.RunConfig) + C.field_names(AGENT_CONFIGS[agent]))
        close = difflib.get_close_matches(unknown[0], known, n=1)
        arguments = sorted(factories.named_parameters(factory) - {"agent", "env"} - set(known)) if factory else []
        close_argument = difflib.get_close_matches(unknown[0], arguments, n=1)
        if close_argument and not close:  # rnn_unitz: net_kwargs={"rnn_units": ...}
            close = [f"net_kwargs={{{close_argument[0]!r}: ...}}"]
        hint = f"; did you mean {close[0]}?" if close else ""
        raise C.ConfigError(f"unknown setting {unknown[0]!r}{hint}")
    run = C.RunConfig(**{**run_values, "env": env, "agent": agent})
    return run, agent_config(agent, agent_values)


def _named_factory(net, agent: str):
    """The model factory ``net`` names (a registered name, a function, or None: the agent's default), or None
    where the name is unknown (refused later, with the names)."""
    from kerlym import networks

    if callable(net):
        return net
    if net is None:
        net = AGENTS[agent].default_network
    return networks.NETWORKS.get(net) if isinstance(net, str) else None


def all_agent_fields() -> set[str]:
    """Every field of every agent config."""
    return {name for cls in AGENT_CONFIGS.values() for name in C.field_names(cls)}


def split_settings(values: dict, agent: str) -> tuple[dict, dict, dict]:
    """Sort flat settings into (run fields, the agent's fields, fields of other agents only); another spelling
    of a setting (``n_step``, ``max_mem``) counts as its field (:func:`kerlym.config.canonical`)."""
    run_names = set(C.field_names(C.RunConfig))
    mine = set(C.field_names(AGENT_CONFIGS[agent]))
    run, own, other = {}, {}, {}
    for key, value in C.canonical(values).items():  # n_step counts as return_steps
        (run if key in run_names else own if key in mine else other)[key] = value
    return run, own, other


def agent_config(agent: str, values: dict) -> C.AgentConfig:
    """The agent's config from field values; an unknown name is an error with a did-you-mean."""
    if agent not in AGENT_CONFIGS:
        raise C.ConfigError(f"unknown agent {agent!r}; choose one of: {', '.join(AGENT_CONFIGS)}")
    cls = AGENT_CONFIGS[agent]
    known = C.field_names(cls)
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise C.ConfigError(f"{cls.__name__} has no setting {key!r}{hint}")
    try:
        return cls(**values)
    except C.ConfigError:
        raise
    except TypeError as e:  # a value of the wrong type compared or computed with
        raise C.ConfigError(f"bad value in {cls.__name__}: {e}") from None


class EnvFactory:
    """A zero-argument callable making the run's env (with rendering, and episode statistics for ``-S``).

    A plain object rather than a closure, so that it pickles: an actor process
    (``--actors process``) makes its envs with it.

    Args:
        run: the run's config.
        submit_stats: a list that collects the ``RecordEpisodeStatistics`` wrapper of each env made here
            (``-S``); it stays in this process, so envs made in an actor process are not collected.
    """

    def __init__(self, run: C.RunConfig, submit_stats: list | None = None):
        self.run = run
        self.submit_stats = submit_stats
        if submit_stats is None and not run.render and not run.env_kwargs and ":" not in run.env:
            self.env_id = run.env  # nothing added to the plain env: copies may come from ale-py's vector env

    def __call__(self):
        from kerlym.envs import make_env

        run = self.run
        render_mode = "human" if run.render else None
        if "human" in (render_mode, (run.env_kwargs or {}).get("render_mode")):
            from kerlym.bundle import has_display

            if not has_display():  # a window without a display can crash the process (SDL: SIGSEGV)
                raise C.ConfigError("render_mode 'human' opens a window and needs a display; none was found")
        env = make_env(run.env, render_mode, run.env_kwargs, run.gym_packages)  # registers ALE and kerlym ids
        if self.submit_stats is not None:
            import gymnasium as gym

            env = gym.wrappers.RecordEpisodeStatistics(env, buffer_length=1_000_000)
            self.submit_stats.append(env)
        return env

    def __getstate__(self):
        return {**self.__dict__, "submit_stats": [] if self.submit_stats is not None else None}


def make_env_factory(run: C.RunConfig, submit_stats: list | None = None) -> EnvFactory:
    """A zero-argument callable making the run's env (see :class:`EnvFactory`)."""
    return EnvFactory(run, submit_stats)


def make(run, config: C.AgentConfig | None = None, submit_stats: list | None = None, **settings):
    """The agent that ``run`` and ``config`` describe, on the run's env.

    ``make(env_id, agent_name, preset=..., **settings)`` configures first (see :func:`configure`).
    """
    if isinstance(run, str):
        run, config = configure(run, config, **settings)
    elif not isinstance(run, C.RunConfig):
        raise C.ConfigTypeError(f"make's first argument is an env id (a str) or a RunConfig, got {run!r}")
    elif settings:
        raise TypeError("make(run, config) takes no further settings; change the configs instead")
    elif not isinstance(config, C.AgentConfig):
        need = AGENT_CONFIGS[run.agent].__name__
        raise C.ConfigTypeError(f"make(run, config): config must be a {need} for -a {run.agent}, got {config!r}")
    config, _ = trained_net_kwargs(run, config)
    check_network(run, config)
    agent = AGENTS[run.agent](make_env_factory(run, submit_stats), config)
    agent.run_config = run  # learn() trains to its budget (a preset's steps) and evaluates as the run says
    return agent


def trained_net_kwargs(run: C.RunConfig, cfg: C.AgentConfig) -> tuple[C.AgentConfig, str | None]:
    """``--trained-agent RUN_DIR`` without ``--net-kwargs``: ``cfg`` with the saved run's, where it built the same
    network (so that its weights fit), and a note saying so; else ``cfg`` as it is and None."""
    if not run.trained_agent or cfg.net_kwargs is not None:
        return cfg, None
    source_run, source = saved_configs(run.trained_agent)
    same_kind = AGENT_CONFIGS[source_run.agent].network_kind == AGENT_CONFIGS[run.agent].network_kind
    if not source.net_kwargs or not same_kind or source.modelfactory != cfg.modelfactory:
        return cfg, None
    words = " ".join(f"{k}={v!r}" for k, v in source.net_kwargs.items())
    note = f"--trained-agent: the network takes its run's --net-kwargs {words}"
    return C.replace(cfg, net_kwargs=source.net_kwargs), note


def check_network(run: C.RunConfig, config: C.AgentConfig) -> None:
    """Refuse an agent/net combination that cannot work, from their names alone (:class:`ConfigError`)."""
    from kerlym import networks

    net = config.modelfactory
    if isinstance(net, str) and net not in networks.NETWORKS:
        raise C.ConfigError(f"unknown net {net!r}; choose one of: {', '.join(networks.NETWORKS)}")
    kind = AGENT_CONFIGS[run.agent].network_kind
    actor_critic, policy_net = kind == "actor_critic", kind == "policy"
    if isinstance(net, str) and actor_critic and net not in networks.ACTOR_CRITIC_NETWORKS:
        raise C.ConfigError(
            f"-a {run.agent} needs an actor-critic network: {', '.join(sorted(networks.ACTOR_CRITIC_NETWORKS))} "
            f"(got {net})"
        )
    if isinstance(net, str) and not actor_critic and net in networks.ACTOR_CRITIC_NETWORKS:
        raise C.ConfigError(f"{net} is an actor-critic network for -a a2c, a3c or ppo, not for -a {run.agent}")
    if isinstance(net, str) and policy_net and net not in networks.POLICY_NETWORKS:
        raise C.ConfigError(f"-a pg needs a policy network: {', '.join(sorted(networks.POLICY_NETWORKS))} (got {net})")
    if isinstance(net, str) and not policy_net and not actor_critic and net in networks.POLICY_NETWORKS:
        q_nets = ", ".join(
            n for n in networks.NETWORKS if n not in networks.POLICY_NETWORKS | networks.ACTOR_CRITIC_NETWORKS
        )
        raise C.ConfigError(f"{net} is a policy network for -a pg; Q-learning agents need one of: {q_nets}")
    if config.net_kwargs:  # the agent's default network is known only to its class (which imports Keras)
        problem = factories.net_kwargs_problem(
            AGENT_CONFIGS[run.agent], config.net_kwargs, _named_factory(net, run.agent)
        )
        if problem is not None:
            raise C.ConfigError(f"--net-kwargs: {problem}")
    if getattr(config, "dueling", False) and net in networks.MULTI_HEAD_Q_NETWORKS:
        raise C.ConfigError(
            f"--dueling replaces the network's output layer, and {net}'s Q-values come from several heads; "
            "use simple_dnn, zoo_mlp, q_rnn or a CNN"
        )


def check_env(run: C.RunConfig, config: C.AgentConfig, training: bool = True, new_run: bool = True) -> None:
    """Refuse env/agent/net combinations that cannot work, before any model is built (:class:`ConfigError`).

    ``training=False`` (``--play``, ``--export``) leaves out what only training's envs need (``--vector_env``);
    ``new_run=False`` (``--resume`` too) what only a fresh run needs (``--pretrain``'s GnuGo or cached games: a
    saved run's weights are its checkpoint's).
    """
    import gymnasium as gym

    from kerlym import networks
    from kerlym._io import first_line

    check_network(run, config)
    net = config.modelfactory
    actor_critic = AGENT_CONFIGS[run.agent].network_kind == "actor_critic"
    if run.env.startswith("gymnax:"):
        from kerlym.envs import gymnax_envs

        refused = gymnax_envs.refusals(config)
        if refused:
            raise C.ConfigError(f"the fused JAX path (-e {run.env}) does not take {', '.join(refused)}")
        if isinstance(config, C.DQNConfig):  # its replay buffer, before a run folder is made
            from kerlym.agents.fused_dqn import check_replay_fits

            check_replay_fits(run.env, config, 1)
    if training and config.vector_env == "envpool":
        from kerlym.envs import envpool_atari

        flags = {"env_kwargs": run.env_kwargs, "render": run.render, "submit": run.submit}
        other = tuple(C.flag(name) for name, on in flags.items() if on)
        other += ("--actors ray",) if config.actors == "ray" else ()
        preprocessor = config.preprocessor if not callable(config.preprocessor) else "a function's"
        why = envpool_atari.refusal(None if ":" in run.env else run.env, str(preprocessor), other)
        if why:
            raise C.ConfigError(why)
    schedules = (getattr(config, "lr_schedule", None), getattr(config, "clip_schedule", None))
    if "linear" in schedules and run.steps is None:
        raise C.ConfigError("a linear schedule falls to 0 at --steps, so it needs --steps")
    if run.search:
        if AGENT_CONFIGS[run.agent].network_kind == "policy":
            raise C.ConfigError(
                f"--search needs a value estimate, which -a {run.agent} has not; use dqn, ddqn, a2c or ppo"
            )
    if run.pretrain and not actor_critic:
        raise C.ConfigError(f"--pretrain clones into a policy and a value head: -a a2c, a3c or ppo, not -a {run.agent}")
    if run.pretrain and run.pretrain.startswith("gnugo:") and run.env not in GO_IDS:
        raise C.ConfigError(f"--pretrain {run.pretrain} clones GnuGo's Go: -e {' or '.join(GO_IDS)} (an openspiel: "
                            "game learns from mcts:SIMULATIONS:GAMES)")  # fmt: skip
    if run.pretrain and run.pretrain.startswith("mcts:") and not str(run.env).startswith(OPENSPIEL_PREFIX):
        raise C.ConfigError(f"--pretrain {run.pretrain} clones OpenSpiel's MCTS: -e openspiel:GAME, not {run.env} "
                            "(Go9x9-v0 learns from gnugo:LEVEL:GAMES)")  # fmt: skip
    if run.pretrain and (config.nframes != 1 or config.difference_obs or config.preprocessor not in (None, "none")):
        raise C.ConfigError("--pretrain learns single board positions: it needs --nframes 1, no --difference_obs "
                            "and no preprocessor")  # fmt: skip
    if config.self_play is not None and AGENT_CONFIGS[run.agent].network_kind == "policy":
        raise C.ConfigError(f"-a {run.agent} cannot play itself; --self-play takes dqn, ddqn, a2c, a3c or ppo")
    try:
        env = make_env_factory(run)()
    except Exception as e:  # a missing extra (box2d, open_spiel, ...) or a broken env: its first line says which
        raise C.ConfigError(f"cannot create {run.env}: {first_line(e)}") from None
    try:
        continuous_ok = actor_critic and isinstance(env.action_space, gym.spaces.Box)
        if not isinstance(env.action_space, gym.spaces.Discrete) and not continuous_ok:
            raise C.ConfigError(
                f"{run.env} has a continuous action space ({env.action_space}); -a {run.agent} needs discrete actions"
            )
        if run.eval_opponents:
            _check_opponents(env, run)
        if run.search and not getattr(env.unwrapped, "searchable", False):
            raise C.ConfigError(f"--search plays OpenSpiel games (-e openspiel:GAME) and Go, not {run.env}")
        if config.self_play is not None and not getattr(env.unwrapped, "self_play", False):
            raise C.ConfigError(
                f"--self-play needs a two-player OpenSpiel game (-e openspiel:GAME) or Go, not {run.env}"
            )
        if run.pretrain and training and new_run:  # a saved run, pretrained once, needs neither GnuGo nor the games
            _check_pretrain(env.unwrapped, run.pretrain)
        env = _preprocessed(env, run, config)
        shape = env.observation_space.shape
        if shape is None:
            raise C.ConfigError(
                f"{run.env} has observations of type {env.observation_space}; kerlym needs arrays "
                "(wrap the env in gymnasium.wrappers.FlattenObservation)"
            )
        if isinstance(net, str) and net in networks.CONV_NETWORKS and len(shape) not in (2, 3):
            raise C.ConfigError(
                f"{net} is a convolutional network but {run.env} observations have shape {shape}; "
                "use simple_dnn or an image env"
            )
        if isinstance(net, str) and net in networks.VECTOR_NETWORKS and len(shape) != 1:
            raise C.ConfigError(
                f"{net} reads vector observations but {run.env} observations have shape {shape}; "
                "use a convolutional network (nature_cnn, actor_critic_cnn)"
            )
        if net in ("board_cnn", "actor_critic_board"):
            height, width = networks.board_size(shape)
            if not networks.board_actions_fit(height, width, env.action_space.n):
                raise C.ConfigError(
                    f"{net} needs an action per point of the board first, {height}x{width} = "
                    f"{height * width}, or one per column, but {run.env} has {env.action_space.n} actions"
                )
        flag = next((f for f in ("symmetries", "average_symmetries") if getattr(config, f, False)), None)
        if flag is not None:
            if not callable(getattr(env.unwrapped, "symmetries", None)):
                raise C.ConfigError(f"--{flag} needs an env that defines symmetries(); {run.env} does not")
            if tuple(shape) != tuple(env.unwrapped.observation_space.shape):
                raise C.ConfigError(
                    f"--{flag} permutes {run.env}'s observations as the env makes them, but the "
                    f"{config.preprocessor} preprocessor changes their shape"
                )
        check_resources(config, shape, env.observation_space.dtype)
    finally:
        env.close()


def _check_pretrain(game, spec: str) -> None:
    """``--pretrain gnugo``'s games: cached, or GnuGo there to play them; else a :class:`ConfigError` naming the
    package (``mcts`` games need only OpenSpiel, which the env has)."""
    from kerlym import pretrain
    from kerlym.envs.go_opponents import find_gnugo

    if spec.startswith("gnugo:") and find_gnugo() is None and not os.path.exists(pretrain.dataset_path(spec, game)):
        raise C.ConfigError(f"--pretrain {spec} has GnuGo play the games: apt-get install gnugo")


def _check_opponents(env, run: C.RunConfig) -> None:
    """``--eval_opponents`` that ``env`` can play (:func:`kerlym.envs.check_opponents`), or a :class:`ConfigError`."""
    from gymnasium.error import DependencyNotInstalled

    from kerlym._io import first_line
    from kerlym.envs import check_opponents

    try:
        check_opponents(env, run.eval_opponents)
    except (ValueError, DependencyNotInstalled) as e:
        raise C.ConfigError(f"--eval_opponents on {run.env}: {first_line(e)}") from None


def _preprocessed(env, run: C.RunConfig, config: C.AgentConfig):
    """``env`` with the run's preprocessor, or a :class:`ConfigError` saying why that preprocessor does not fit it."""
    from kerlym import preproc
    from kerlym._io import first_line

    shape = env.observation_space.shape
    if config.preprocessor == "atari" and not type(env.unwrapped).__module__.startswith("ale_py"):
        raise C.ConfigError(
            f"-E atari is Gymnasium's AtariPreprocessing, for ALE (Atari) envs; {run.env} is not one "
            f"(observations of shape {shape}); use -E none"
        )
    try:
        return preproc.apply(env, preproc.get(config.preprocessor))
    except Exception as e:  # a preprocessor made for other frames (karpathy_preproc wants 210x160 RGB)
        name = getattr(config.preprocessor, "__name__", config.preprocessor)
        raise C.ConfigError(
            f"the {name} preprocessor cannot read {run.env}'s observations of shape {shape}: {first_line(e)}"
        ) from None


def check_resources(config: C.AgentConfig, frame_shape, frame_dtype) -> None:
    """Refuse settings this machine cannot run: more env workers than it can start, a replay memory beyond its RAM."""
    import numpy as np

    from kerlym import memory

    workers, why = resources.env_worker_limit()
    if config.concurrency > workers:
        raise C.ConfigError(
            f"{C.flag('concurrency')} {config.concurrency} is more env processes than this machine can run "
            f"(at most {workers} here{': ' + why if why else ''})"
        )
    capacity = getattr(config, "max_memory", None)
    if capacity is None:
        return
    dtype = np.uint8 if frame_dtype == np.uint8 else np.float32
    need = memory.replay_nbytes(capacity, frame_shape, dtype, config.concurrency)
    have = resources.available_memory_bytes()
    if need > have:
        raise C.ConfigError(
            f"a replay memory of {capacity} frames of shape {tuple(frame_shape)} needs {need / 2**30:.1f} GiB, but "
            f"{have / 2**30:.1f} GiB is available; lower {C.flag('max_memory')}"
        )


def saved_configs(run_dir: str, overrides: dict | None = None) -> tuple[C.RunConfig, C.AgentConfig]:
    """A saved run's configs (defaults for any setting it lacks), with ``overrides`` applied.

    Runs saved before the typed configs used the flags' names (``num_frames``,
    ``max_mem``...) and listed every setting of every agent; both still load.

    Raises:
        kerlym.runs.CheckpointError: no readable ``config.json`` or an unknown agent in it.
        kerlym.config.ConfigError: a bad value in it or in ``overrides``.
    """
    from kerlym import runs

    saved = runs.read_config(run_dir)
    if not isinstance(saved, dict):
        raise runs.CheckpointError(f"{os.path.join(run_dir, runs.CONFIG)} is corrupt: not a JSON object")
    saved = {C.OLD_NAMES.get(k, k): v for k, v in saved.items()}
    if "reset_on_score" in saved and saved["reset_on_score"] is not None:
        saved["reset_on_score"] = bool(saved["reset_on_score"])
    agent = saved.get("agent", C.RunConfig.agent)
    if agent not in AGENT_CONFIGS:
        raise runs.CheckpointError(f"{os.path.join(run_dir, runs.CONFIG)} names an unknown agent {agent!r}")
    values = {**C.defaults(C.RunConfig), **C.defaults(AGENT_CONFIGS[agent], cli=True), **saved, **(overrides or {})}
    run_values, agent_values, _ = split_settings(values, agent)  # old files also hold other agents' settings
    return C.RunConfig(**run_values), agent_config(agent, agent_values)


def _run_dir_of(path: str) -> str | None:
    """The run folder a ``.keras`` file or checkpoint folder belongs to: the nearest folder above with a config.json."""
    from kerlym import runs

    folder = os.path.dirname(os.path.abspath(path))
    for _ in range(3):  # best.keras sits in the run folder; checkpoints/step-N/model.keras two levels below it
        if os.path.isfile(os.path.join(folder, runs.CONFIG)):
            return folder
        folder = os.path.dirname(folder)
    return None


def load(path: str, checkpoint: str | None = "latest", env=None, agent: str | None = None, **settings):
    """An agent restored from a run folder, a checkpoint folder or a ``.keras`` file, ready to act, evaluate or learn.

    ::

        agent = kerlym.load("runs/CartPole-v1-ddqn-20250101-120000")
        agent.evaluate(10)
        agent.learn(max_steps=10_000)  # continues from the checkpoint's step count, epsilon and optimizer

    Args:
        path: a run folder, one of its ``checkpoints/step-N`` folders, or a ``.keras`` file.
        checkpoint: for a run folder, ``"latest"`` (the newest checkpoint: weights, optimizer state,
            counters and epsilon, and the run's episode rows), ``"best"`` (``best.keras``, kept by
            ``--eval_every``: greedy weights only, counters at 0) or ``None`` (the run's settings, untrained).
        env: the env to act on (an id, an env or a callable); default: the run's. Needed, with
            ``agent``, for a ``.keras`` file outside a run folder.
        agent: the agent's name (``"dqn"``, ``"ddqn"``, ``"pg"``) for a ``.keras`` file outside a run folder.
        **settings: for such a file, the settings its network was built with (``nframes``, ``modelfactory``, ...).

    Raises:
        kerlym.runs.CheckpointError: a missing or unreadable run, checkpoint or model (one line).
        kerlym.config.ConfigError: bad settings, or a ``.keras`` file with no run folder and no ``env``/``agent``.
    """
    from kerlym import runs
    from kerlym.stats import read_progress

    if checkpoint not in ("latest", "best", None):
        raise C.ConfigError(f"checkpoint must be 'latest', 'best' or None, got {checkpoint!r}")
    if not os.path.exists(path):
        raise runs.CheckpointError(f"{path!r} does not exist")
    is_checkpoint = os.path.isdir(path) and os.path.isfile(os.path.join(path, runs.STATE))
    if os.path.isdir(path) and not is_checkpoint:  # a run folder
        run_dir = path
        runs.read_config(run_dir)  # a folder that is no run says so before it is searched for checkpoints
        pick = {"latest": checkpoints.latest_checkpoint, "best": checkpoints.best_model, None: lambda _: None}
        source = pick[checkpoint](path)
    else:
        run_dir, source = _run_dir_of(path), path
    if run_dir is not None:
        run, cfg = saved_configs(run_dir, settings)
    elif env is None or agent is None:
        raise C.ConfigError(f"{path} is not inside a run folder (no config.json): pass env= and agent=")
    else:
        run, cfg = configure(env if isinstance(env, str) else None, agent, **settings)
    if isinstance(env, str):
        run = C.replace(run, env=env)
    check_network(run, cfg)  # the line the command gives for the same folder
    env_factory = make_env_factory(run) if env is None or isinstance(env, str) else env
    built = AGENTS[run.agent](env_factory, cfg)
    built.run_config = run
    if source is None:
        return built
    if os.path.isdir(source):  # a checkpoint: weights, optimizer, counters
        if source != path:  # a run folder's latest; a training run beside this may prune it while it is read
            checkpoints.read_latest(run_dir, lambda newest: checkpoints.restore_checkpoint(newest, built))
        else:
            checkpoints.restore_checkpoint(source, built)
        if run_dir is not None:
            rows = read_progress(os.path.join(run_dir, runs.PROGRESS))
            built.episodes = [r for r in rows if r["episode"] <= built.episode]
    else:  # a .keras file: the greedy network's weights only
        weights = checkpoints.load_model(source).get_weights()
        try:
            built.model.set_weights(weights)
            built.greedy_model.set_weights(weights)  # the weight average's network too, where there is one
        except ValueError as e:
            raise runs.CheckpointError(f"{source} does not match this agent's network: {runs.first_line(e)}") from None
    return built
