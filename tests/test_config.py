"""The typed configs: one default and one validation per setting, the command's defaults, and old run files."""

import dataclasses
import os

import pytest

from kerlym import config as C
from kerlym.make import agent_config, all_agent_fields, split_settings


def test_every_flag_is_spelled_once_and_every_field_documented():
    seen = {}
    for cls in (C.RunConfig, C.DQNConfig, C.PGConfig):
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help"
            for flag in f.metadata.get("flags", ()):
                assert seen.setdefault(flag, f.name) == f.name, f"{flag} names two settings"
    # The original KeRLym's flags keep their spellings.
    for flag in (
        "-e",
        "-n",
        "-f",
        "-u",
        "-b",
        "-o",
        "-p",
        "-D",
        "-s",
        "-d",
        "-t",
        "-m",
        "-P",
        "-F",
        "-S",
        "-a",
        "-i",
        "-r",
    ):
        assert flag in seen


def test_the_commands_defaults_are_the_original_commands():
    cli = {**C.defaults(C.RunConfig), **C.defaults(C.DQNConfig, cli=True)}
    assert (cli["env"], cli["agent"], cli["nframes"], cli["dropout"], cli["epsilon_decay"]) == (
        "MountainCar-v0",
        "ddqn",
        2,
        0.5,
        1e-4,
    )
    assert (cli["update_freq"], cli["update_nsamp"], cli["batch_size"], cli["max_memory"]) == (1000, 1100, 32, 100_000)
    api = C.defaults(C.DQNConfig)
    assert (api["nframes"], api["dropout"], api["epsilon_decay"]) == (1, 0.0, 0.0)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"epsilon": 1.5}, "epsilon must be in [0, 1], got 1.5"),
        ({"batch_size": 0}, "batch_size must be positive and finite, got 0"),
        ({"max_memory": 16, "batch_size": 32}, "max_mem (16) must be at least the batch size (32)"),
        ({"learning_rate": float("nan")}, "learning_rate must be positive and finite, got nan"),
        ({"discount": float("inf")}, "discount must be in [0, 1], got inf"),
        ({"ema_steps": -5}, "ema must be positive and finite, got -5"),
        ({"replay": "fifo"}, "unknown replay 'fifo'; choose one of: newest, uniform"),
        ({"learning_starts": -1}, "learning_starts must be at least 0, got -1"),
    ],
)
def test_bad_settings_are_one_line_errors(values, message):
    with pytest.raises(C.ConfigError) as e:
        C.DQNConfig(**values)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_unknown_setting_suggests_the_closest():
    with pytest.raises(C.ConfigError, match="DQNConfig has no setting 'dufference_obs'; did you mean difference_obs"):
        agent_config("ddqn", {"dufference_obs": True})


def test_split_sorts_settings_by_owner():
    run, own, other = split_settings({"env": "X", "update_freq": 4, "reset_on_score": True, "seed": 1}, "dqn")
    assert run == {"env": "X"} and own == {"update_freq": 4, "seed": 1} and other == {"reset_on_score": True}


def test_old_run_files_names_map_to_fields():
    fields = all_agent_fields() | set(C.field_names(C.RunConfig))
    assert set(C.OLD_NAMES.values()) <= fields


def test_a_subclass_default_keeps_the_one_declarations_help_flags_and_check():
    parent = {f.name: f for f in dataclasses.fields(C.AgentConfig)}
    for cls, name, default in [
        (C.PPOConfig, "learning_rate", 3e-4),
        (C.A2CConfig, "learning_rate", 7e-4),
        (C.PGConfig, "dropout", 0.5),
        (C.A2CConfig, "nframes", 1),
        (C.PPOConfig, "clipnorm", 0.5),
    ]:
        (f,) = [f for f in dataclasses.fields(cls) if f.name == name]
        assert f.default == default and C.defaults(cls, cli=True)[name] == default
        kept = ("help", "flags", "topic", "check")
        assert {k: f.metadata[k] for k in kept} == {k: parent[name].metadata[k] for k in kept}
        assert f.metadata["cli_default"] is dataclasses.MISSING  # the new default is the command's too
    # A field shared by two families (not inherited) is declared once as well: PPO's batch_size is DQN's.
    ppo, dqn = (next(f for f in dataclasses.fields(c) if f.name == "batch_size") for c in (C.PPOConfig, C.DQNConfig))
    assert (ppo.default, dqn.default) == (64, 32) and ppo.metadata == dqn.metadata
    with pytest.raises(C.ConfigError, match=r"-r/--learning_rate must be positive and finite, got 0"):
        C.PPOConfig(learning_rate=0)  # the parent's check


def test_each_setting_is_declared_once():
    import ast
    import collections

    declared = collections.Counter()  # setting(...) calls by the name they declare (BATCH_SIZE: batch_size)
    package = os.path.dirname(C.__file__)
    sources = [open(os.path.join(package, name)).read() for name in sorted(os.listdir(package)) if name.endswith(".py")]
    for node in (n for source in sources for n in ast.walk(ast.parse(source))):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Call):
            if getattr(node.value.func, "id", None) == "setting":
                target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
                declared[target.id.lower()] += 1
    names = {f.name for cls in (C.RunConfig, C.DQNConfig, C.PGConfig, C.PPOConfig) for f in dataclasses.fields(cls)}
    assert set(declared) == names and set(declared.values()) == {1}


def test_every_flag_has_its_field_name_as_long_flag_and_n_step_is_return_steps():
    for cls in (C.RunConfig, C.DQNConfig, C.PGConfig, C.PPOConfig):
        for f in dataclasses.fields(cls):
            flags = f.metadata["flags"]
            assert f"--{f.name}" in flags and C.flag(f.name) == "/".join(flags), f.name
    assert C.flag("max_memory") == "-m/--max_memory/--max_mem"
    assert C.flag("return_steps") == "--return_steps/--n_step"
    assert C.OLD_NAMES["n_step"] == "return_steps" and C.OLD_NAMES["num_frames"] == "nframes"
    assert "n_step" not in C.field_names(C.DQNConfig) and "n_steps" in C.field_names(C.PPOConfig)


def test_n_step_still_names_return_steps_as_a_keyword_a_preset_file_and_in_config_json(tmp_path):
    import json

    import kerlym
    from kerlym import runs
    from kerlym.make import saved_configs

    assert kerlym.configure("CartPole-v1", "ddqn", n_step=3)[1].return_steps == 3
    assert kerlym.configure("CartPole-v1", "ddqn", max_mem=500)[1].max_memory == 500  # an original spelling
    assert split_settings({"n_step": 4, "env": "X"}, "dqn") == ({"env": "X"}, {"return_steps": 4}, {})
    path = tmp_path / "preset.json"
    path.write_text(json.dumps({"agent": "dqn", "n_step": 5}))
    assert kerlym.configure(preset=str(path))[1].return_steps == 5
    # config.json as this version's predecessor wrote it: every field by name, n_step among them.
    run, cfg = kerlym.configure("CartPole-v1", "ddqn", cli_defaults=True, return_steps=5, max_memory=500)
    saved = {**C.to_dict(run), **C.to_dict(cfg)}
    saved["n_step"] = saved.pop("return_steps")
    runs.write_config(str(tmp_path), saved)
    again_run, again = saved_configs(str(tmp_path))
    assert (again_run, again) == (run, cfg) and again.return_steps == 5
    # and as the older command wrote it, with the flags' names (num_frames, max_mem)
    runs.write_config(str(tmp_path), {"env": "CartPole-v1", "agent": "dqn", "num_frames": 3, "max_mem": 900})
    assert (saved_configs(str(tmp_path))[1].nframes, saved_configs(str(tmp_path))[1].max_memory) == (3, 900)


def test_the_api_may_pass_functions_and_none_where_it_always_could():
    def frames(obs):
        return obs

    cfg = C.DQNConfig(preprocessor=frames, modelfactory=frames)
    assert cfg.preprocessor is frames and C.DQNConfig(preprocessor=None).preprocessor is None
    for values in ({"replay": frames}, {"dtype_policy": frames}, {"preprocessor": 3}):
        with pytest.raises(C.ConfigError, match="unknown"):
            C.DQNConfig(**values)


@pytest.mark.parametrize(
    "cls, values, message",
    [
        (C.DQNConfig, {"seed": -1}, "--seed must be an integer from 0 to 2**32 - 1, got -1"),
        (C.DQNConfig, {"seed": 2**32}, "--seed must be an integer from 0 to 2**32 - 1, got 4294967296"),
        (C.DQNConfig, {"batch_size": 32.5}, "-b/--batch_size must be an integer, got 32.5"),
        (C.DQNConfig, {"concurrency": 2.5}, "-c/--concurrency must be an integer, got 2.5"),
        (C.DQNConfig, {"max_memory": True}, "must be an integer, got True"),
        (C.DQNConfig, {"learning_rate": "0.1"}, "-r/--learning_rate must be a number, got '0.1'"),
        (C.DQNConfig, {"modelfactory": 3}, "-n/--modelfactory/--net must be a name or a function, got 3"),
        (C.RunConfig, {"steps": "100"}, "--steps must be an integer, got '100'"),
        (C.RunConfig, {"env": 123}, "-e/--env must be a string, got 123"),
        (C.DQNConfig, {"optimizer": "adma"}, "unknown optimizer 'adma'; did you mean adam"),
        (C.DQNConfig, {"optimizer": "nosuchopt"}, "unknown optimizer 'nosuchopt'; choose one of: adadelta,"),
        (C.DQNConfig, {"loss": "hubr"}, "unknown loss 'hubr'; did you mean huber?"),
        (C.DQNConfig, {"loss": "nosuchloss"}, "unknown loss 'nosuchloss'; choose one of: binary_crossentropy,"),
    ],
)
def test_values_of_the_wrong_type_or_name_are_one_line_errors(cls, values, message):
    with pytest.raises(C.ConfigError) as e:
        cls(**values)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_integer_settings_take_numpy_integers_and_names_any_keras_spelling():
    import numpy as np

    cfg = C.DQNConfig(batch_size=np.int64(16), seed=2**32 - 1, optimizer="RMSprop", loss="MeanSquaredError")
    assert (cfg.batch_size, cfg.seed, cfg.optimizer, cfg.loss) == (16, 2**32 - 1, "RMSprop", "MeanSquaredError")
    assert C.DQNConfig(learning_rate=1).learning_rate == 1  # an int is a number


def test_the_optimizer_and_loss_names_are_those_keras_takes():
    keras = pytest.importorskip("keras")

    def takes(get, name):
        try:
            get(name)
        except (ValueError, TypeError, KeyError):
            return False
        return True

    def optimizer(name):
        return keras.optimizers.get({"class_name": name, "config": {"learning_rate": 1e-3}})

    public = [n for n in dir(keras.optimizers) if isinstance(getattr(keras.optimizers, n), type) and n != "Optimizer"]
    assert {n.lower() for n in public if takes(optimizer, n)} == set(C.OPTIMIZER_NAMES) - {"rmsprop_tf"}
    public = [n for n in dir(keras.losses) if not n.startswith("_") and n not in ("get", "deserialize", "serialize")]
    taken = {n for n in public if n != "Loss" and takes(keras.losses.get, n)}
    assert taken <= set(C.LOSS_NAMES)
    assert all(takes(keras.losses.get, n) for n in C.LOSS_NAMES)  # and the short names: mse, huber's aliases
