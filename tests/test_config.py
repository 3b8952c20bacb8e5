"""The typed configs: one default and one validation per setting, the command's defaults, and old run files."""

import dataclasses

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
