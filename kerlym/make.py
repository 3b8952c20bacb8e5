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

from kerlym import config as C


def configure(
    env: str | None = None, agent: str | None = None, preset: bool = False, cli_defaults: bool = False, **settings
) -> tuple[C.RunConfig, C.AgentConfig]:
    """The run's and the agent's configs: defaults, then the preset for ``env`` and ``agent``, then ``settings``.

    Args:
        env: Gymnasium env id (default: the command's, ``MountainCar-v0``).
        agent: ``"dqn"``, ``"ddqn"``, ``"pg"``, ``"a2c"``, ``"a3c"``, ``"ppo"`` (default ``"ddqn"``).
        preset: start from kerlym's tuned settings for this env and agent (:mod:`kerlym.presets`).
        cli_defaults: start from the command's defaults (the original KeRLym command's ``-t 2``,
            ``-o 0.5``, ``-D 1e-4``) instead of the Python API's.
        **settings: any :class:`~kerlym.config.RunConfig` or agent config field. A setting of another
            agent only is ignored (the command prints a note); an unknown name is an error.

    Raises:
        kerlym.config.ConfigError: an unknown name, a bad value, or a missing preset (one line).
    """
    run_defaults = {f.name: f.default for f in C.fields(C.RunConfig)}
    env = env or run_defaults["env"]
    agent = agent or run_defaults["agent"]
    if agent not in C.AGENT_CONFIGS:
        raise C.ConfigError(f"unknown agent {agent!r}; choose one of: {', '.join(C.AGENT_CONFIGS)}")
    values = dict(C.defaults(C.AGENT_CONFIGS[agent], cli=True)) if cli_defaults else {}
    if preset:
        from kerlym import presets

        try:
            values.update(presets.get(env, agent))
        except KeyError as e:
            raise C.ConfigError(e.args[0]) from None
    values.update(settings)
    if values.get("ema_steps") == 0:  # --ema 0 turns a preset's weight average off
        values["ema_steps"] = None
    run_values, agent_values, other = C.split(values, agent)
    unknown = sorted(k for k in other if k not in C.all_agent_fields())
    if unknown:
        known = sorted(C.field_names(C.RunConfig) + C.field_names(C.AGENT_CONFIGS[agent]))
        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise C.ConfigError(f"unknown setting {unknown[0]!r}{hint}")
    run = C.RunConfig(**{**run_values, "env": env, "agent": agent})
    return run, C.agent_config(agent, agent_values)


def make_env_factory(run: C.RunConfig, submit_stats: list | None = None):
    """A zero-argument callable making the run's env (with rendering, and episode statistics for ``-S``)."""

    def make():
        from kerlym.envs import make_env

        env = make_env(run.env, render_mode="human" if run.render else None)  # registers ALE and kerlym ids
        if submit_stats is not None:
            import gymnasium as gym

            env = gym.wrappers.RecordEpisodeStatistics(env, buffer_length=1_000_000)
            submit_stats.append(env)
        return env

    if submit_stats is None and not run.render:
        make.env_id = run.env  # nothing added to the plain env: copies may come from ale-py's vector env
    return make


def make(run, config: C.AgentConfig | None = None, submit_stats: list | None = None, **settings):
    """The agent that ``run`` and ``config`` describe, on the run's env.

    ``make(env_id, agent_name, preset=..., **settings)`` configures first (see :func:`configure`).
    """
    if isinstance(run, str):
        run, config = configure(run, config, **settings)
    elif settings:
        raise TypeError("make(run, config) takes no further settings; change the configs instead")
    from kerlym import agents

    return agents.AGENTS[run.agent](make_env_factory(run, submit_stats), config)


def check_env(run: C.RunConfig, config: C.AgentConfig) -> None:
    """Refuse env/agent/net combinations that cannot work, before any model is built (:class:`ConfigError`)."""
    import gymnasium as gym

    from kerlym import networks, preproc
    from kerlym.runs import first_line

    net = config.modelfactory
    if isinstance(net, str) and net not in networks.NETWORKS:
        raise C.ConfigError(f"unknown net {net!r}; choose one of: {', '.join(networks.NETWORKS)}")
    actor_critic = issubclass(C.AGENT_CONFIGS[run.agent], C.ActorCriticConfig)
    policy_net = run.agent == "pg"
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
    schedules = (getattr(config, "lr_schedule", None), getattr(config, "clip_schedule", None))
    if "linear" in schedules and run.steps is None:
        raise C.ConfigError("a linear schedule falls to 0 at --steps, so it needs --steps")
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
        env = preproc.apply(env, preproc.get(config.preprocessor))
        shape = env.observation_space.shape
        if shape is None:
            raise C.ConfigError(f"{run.env} has observations of type {env.observation_space}; kerlym needs arrays")
        if isinstance(net, str) and net in networks.CONV_NETWORKS and len(shape) not in (2, 3):
            raise C.ConfigError(
                f"{net} is a convolutional network but {run.env} observations have shape {shape}; "
                "use simple_dnn or an image env"
            )
    finally:
        env.close()
