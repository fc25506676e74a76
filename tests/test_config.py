"""Experiment files: unknown keys and wrong types, --set, `harness show` round trips, extends.

A small hermetic registry (no entry points) stands in for the installed plugins, with the names
the default experiment needs (srresnet, srgan, mse) and the first-party schedules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import harness_schedules
import pytest
from click.testing import CliRunner

from harness import config, hookimpl
from harness.cli import cli
from harness.config import ConfigError, ScheduleSpec
from harness.plugin_api import registry as plugins
from harness.plugin_api.registry import build_registry


def srresnet(scale: int = 4, blocks: int = 16, filters: int = 64, act: str = "prelu"):
    return (scale, blocks, filters, act)


def srgan(patch: int = 96, filters: int = 64, dense: int = 1024):
    return (patch, filters, dense)


def mse():
    return lambda sr, hr: 0.0


def charb(eps: float = 1e-3, mode: Literal["mean", "sum"] = "mean", taps: tuple[int, ...] = (1,)):
    return lambda sr, hr: 0.0


class Modified:
    def __init__(self, smoothing: float = 0.0) -> None:
        self.smoothing = smoothing


class _TestPlugin:
    @hookimpl
    def harness_register_generators(self):
        return {"srresnet": srresnet}

    @hookimpl
    def harness_register_discriminators(self):
        return {"srgan": srgan}

    @hookimpl
    def harness_register_content_losses(self):
        return {"mse": mse, "charb": charb}

    @hookimpl
    def harness_register_adversarial_losses(self):
        return {"modified": Modified}


@pytest.fixture(scope="module")
def registry() -> plugins.Registry:
    return build_registry(
        extra=[(_TestPlugin(), "test", "tests"), (harness_schedules, "schedules", "tests")],
        autoload=False,
    )


@pytest.fixture
def with_registry(registry: plugins.Registry):
    """The hermetic registry, handed to CLI invocations as the command line's own
    (``CliRunner().invoke(cli, args, obj={"registry": registry})``)."""
    return registry


@pytest.fixture(scope="module")
def installed() -> plugins.Registry:
    """The installed plugins (for the shipped experiments)."""
    return build_registry()


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _error(path: Path | None, registry, overrides=()) -> str:
    with pytest.raises(ConfigError) as info:
        config.load(path, overrides, registry=registry)
    return str(info.value)


# --------------------------------------------------------------------------- errors


def test_unknown_key_in_a_fixed_table_names_file_table_key_and_suggests(tmp_path, registry):
    path = _write(tmp_path / "x.toml", "[train]\nstpes = 10\n")
    message = _error(path, registry)
    assert 'unknown key "stpes" in [train]' in message
    assert str(path) in message and 'Did you mean "steps"?' in message


def test_unknown_top_level_table(tmp_path, registry):
    message = _error(_write(tmp_path / "x.toml", "[trian]\nsteps = 1\n"), registry)
    assert '"trian"' in message and 'Did you mean "train"?' in message


def test_unknown_plugin_parameter_suggests(tmp_path, registry):
    path = _write(tmp_path / "x.toml", "[losses.charb]\nesp = 0.1\n")
    message = _error(path, registry)
    assert "[losses]" in message and str(path) in message
    assert 'unknown key "esp"' in message and 'Did you mean "eps"?' in message


def test_unknown_plugin_name_lists_known(tmp_path, registry):
    message = _error(_write(tmp_path / "x.toml", "[losses.chrab]\nweight = 1\n"), registry)
    assert 'unknown content loss "chrab"' in message and 'Did you mean "charb"?' in message
    assert "mse (from tests)" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[train]\nsteps = "many"\n', 'key "steps" in [train]'),
        ("[train]\nsteps = 1.5\n", "an integer"),
        ("[data]\naugment = 1\n", "true or false"),
        ('[train]\nprecision = "fp8"\n', "one of 'auto'"),
        ('[losses.charb]\neps = "small"\n', "must be a number"),
        ('[losses.charb]\nmode = "max"\n', "one of 'mean', 'sum'"),
        ("[losses.charb]\ntaps = 3\n", "a list of an integer"),
        ('[generator]\nblocks = "x"\n', 'key "blocks"'),
        ('[losses.mse]\nweight = "heavy"\n', 'key "mse.weight" in [losses]'),
        ('[losses.mse]\nweight = "heavy"\n', "a number or a schedule table"),
    ],
)
def test_wrong_types_are_errors_naming_the_key(tmp_path, registry, text, expected):
    path = _write(tmp_path / "x.toml", text)
    message = _error(path, registry)
    assert expected in message and str(path) in message


def test_host_supplied_parameters_are_not_settable(tmp_path, registry):
    message = _error(_write(tmp_path / "x.toml", "[generator]\nscale = 2\n"), registry)
    assert 'unknown key "scale"' in message


def test_unknown_schedule_and_bad_schedule_params(tmp_path, registry):
    path = _write(tmp_path / "x.toml", '[losses.mse]\nweight = { schedule = "cosnie" }\n')
    assert 'Did you mean "cosine"?' in _error(path, registry)
    path = _write(
        tmp_path / "y.toml",
        '[losses.mse]\nweight = { schedule = "piecewise", boundaries = [10], values = [1] }\n',
    )
    assert "one more value than boundaries" in _error(path, registry)


# --------------------------------------------------------------------------- --set


def test_set_overrides_with_type_checks(tmp_path, registry):
    path = _write(tmp_path / "x.toml", "[train]\nsteps = 10\n\n[losses.charb]\neps = 0.1\n")
    exp = config.load(
        path,
        [
            "train.steps=20",
            "losses.charb.eps=1",  # an integer where a float is expected is widened
            "losses.charb.weight={schedule = 'linear', start = 0, end = 2, steps = 50}",
            "generator.blocks=2",
            "data.train=['a', 'b']",
        ],
        registry=registry,
    )
    assert exp.train.steps == 20
    (term,) = exp.losses
    assert term.params["eps"] == 1.0 and isinstance(term.params["eps"], float)
    assert isinstance(term.weight, ScheduleSpec) and term.weight.schedule == "linear"
    assert term.weight.params["end"] == 2.0 and term.weight.params["steps"] == 50
    assert exp.generator.params["blocks"] == 2
    assert exp.data.train == ("a", "b")
    message = _error(path, registry, ["train.steps=lots"])
    assert 'key "steps" in [train]' in message and "--set train.steps" in message
    assert "unknown" in _error(path, registry, ["train.stepz=3"])
    with pytest.raises(ConfigError, match="table.key=value"):
        config.load(path, ["train.steps"], registry=registry)


def test_set_can_change_a_schedule_parameter(tmp_path, registry):
    path = _write(
        tmp_path / "x.toml",
        '[losses.mse]\nweight = { schedule = "piecewise", boundaries = [5], values = [1, 2] }\n',
    )
    exp = config.load(path, ["losses.mse.weight.values.1=7"], registry=registry)
    assert exp.losses[0].weight.params["values"] == (1.0, 7.0)


# --------------------------------------------------------------------------- show round trip


def test_show_output_is_a_valid_experiment_that_loads_equal(tmp_path, with_registry):
    path = _write(
        tmp_path / "x.toml",
        """
[experiment]
name = "roundtrip"

[generator]
blocks = 2

[losses.charb]
weight = { schedule = "piecewise", boundaries = [10, 20], values = [1.0, 2.0, 3.0] }
eps = 0.01

[losses.second]
name = "charb"
mode = "sum"

[adversarial]
name = "modified"
weight = { schedule = "linear", end = 1e-3, steps = 100 }
""",
    )
    result = CliRunner().invoke(
        cli, ["show", str(path), "--set", "train.steps=77"], obj={"registry": with_registry}
    )
    assert result.exit_code == 0, result.output
    shown = _write(tmp_path / "shown.toml", result.output)
    original = config.load(path, ["train.steps=77"], registry=with_registry)
    again = config.load(shown, registry=with_registry)
    assert again == original
    assert again.train.steps == 77 and again.losses[1].plugin == "charb"
    # And showing the shown file gives the same text: the output is a fixed point.
    again_shown = CliRunner().invoke(cli, ["show", str(shown)], obj={"registry": with_registry})
    assert again_shown.output == result.output


def test_show_defaults_round_trip(tmp_path, with_registry):
    result = CliRunner().invoke(cli, ["show"], obj={"registry": with_registry})
    assert result.exit_code == 0, result.output
    shown = _write(tmp_path / "defaults.toml", result.output)
    assert config.load(shown, registry=with_registry) == config.load(registry=with_registry)


def test_show_reports_errors_without_traceback(tmp_path, with_registry):
    path = _write(tmp_path / "x.toml", "[train]\nstpes = 1\n")
    result = CliRunner().invoke(cli, ["show", str(path)], obj={"registry": with_registry})
    assert result.exit_code == 2
    assert "error:" in result.output and 'Did you mean "steps"?' in result.output


# --------------------------------------------------------------------------- extends


def test_extends_merges_key_by_key(tmp_path, registry):
    _write(
        tmp_path / "base.toml",
        "[train]\nsteps = 10\nbatch_size = 4\n\n[losses.mse]\nweight = 2.0\n\n"
        '[losses.charb]\nweight = { schedule = "constant", value = 3.0 }\n',
    )
    (tmp_path / "sub").mkdir()
    child = _write(
        tmp_path / "sub" / "child.toml",
        'extends = "../base.toml"\n\n[train]\nsteps = 20\n\n'
        '[losses.charb]\nweight = { schedule = "linear", end = 1.0 }\n',
    )
    exp = config.load(child, registry=registry)
    assert (exp.train.steps, exp.train.batch_size) == (20, 4)
    weights = {t.key: t.weight for t in exp.losses}
    assert weights["mse"] == 2.0
    # A schedule table replaces the base's schedule whole (no mixing of two schedules' keys).
    assert weights["charb"].schedule == "linear" and "value" not in weights["charb"].params


def test_extends_cycle_and_missing_base(tmp_path, registry):
    _write(tmp_path / "a.toml", 'extends = "b.toml"\n')
    _write(tmp_path / "b.toml", 'extends = "a.toml"\n')
    assert "cycle" in _error(tmp_path / "a.toml", registry)
    _write(tmp_path / "c.toml", 'extends = "nope.toml"\n')
    assert "does not exist" in _error(tmp_path / "c.toml", registry)


SHIPPED = sorted((Path(__file__).resolve().parents[1] / "experiments").rglob("*.toml"))
SCHEDULE_PARAMS = {
    "constant": {"value": 2e-4},
    "piecewise": {"boundaries": [10, 20], "values": [1e-4, 5e-5, 1e-5]},
}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(p.parents[1]).as_posix())
def test_every_shipped_experiment_round_trips_through_show(path, tmp_path, installed):
    """`harness show X > s.toml && harness show s.toml` gives X again (run directories keep the
    shown file as experiment.toml, so it must load)."""
    result = CliRunner().invoke(cli, ["show", str(path)])
    assert result.exit_code == 0, result.output
    shown = _write(tmp_path / "shown.toml", result.output)
    registry = installed
    assert config.load(shown, registry=registry) == config.load(path, registry=registry)


def test_every_schedule_plugin_round_trips_as_a_learning_rate(tmp_path, installed):
    registry = installed
    for name in registry.names("schedule"):
        value = {"schedule": name, **SCHEDULE_PARAMS.get(name, {})}
        exp = config.from_dict(
            {"train": {"learning_rate": value, "d_learning_rate": value}}, registry=registry
        )
        shown = _write(tmp_path / f"{name}.toml", exp.to_toml())
        again = config.load(shown, registry=registry)
        assert again == exp, name
        assert again.train.learning_rate.schedule == name


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("train.learning_rate", "-1e-4", "finite learning rate >= 0, but is -0.0001"),
        ("train.learning_rate", "nan", "finite learning rate >= 0, but is nan"),
        ("train.d_learning_rate", "inf", "finite learning rate >= 0, but is inf"),
        (
            "train.learning_rate",
            '{schedule = "piecewise", boundaries = [5], values = [1e-4, -1.0]}',
            "but is -1.0 at step 5",
        ),
        ("losses.mse.weight", "nan", "must be a finite weight >= 0, but is nan"),
    ],
)
def test_bad_rates_and_weights_are_refused_when_read(key, value, message, tmp_path, installed):
    path = _write(tmp_path / "x.toml", "[train]\nsteps = 10\n")
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")) as err:
        config.load(path, [f"{key}={value}"], registry=installed)
    assert key.split(".")[-1] in str(err.value)


def test_a_schedules_parameters_sit_beside_its_name_not_in_a_params_table(tmp_path, installed):
    path = _write(
        tmp_path / "experiment.toml",
        '[train.learning_rate]\nschedule = "cosine"\n\n'
        "[train.learning_rate.params]\nstart = 3e-4\nend = 1e-6\nsteps = 100\n",
    )
    message = _error(path, installed)
    assert 'schedule "cosine": unknown key "params"' in message and "[train]" in message, message


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.scale=0", 'key "scale" in [data].* must be at least 1, not 0'),
        ("data.patch=-96", 'key "patch" in [data].* must be at least the scale'),
        ("data.val_limit=-1", 'key "val_limit" in [data]'),
        ("validation.every=-5", 'key "every" in [validation].* 0 or more'),
        ("validation.samples=-1", 'key "samples" in [validation]'),
        ("train.steps=100000000000000000000", 'key "steps" in [train].* beyond any run'),
        ("train.batch_size=0", 'key "batch_size" in [train].* positive'),
    ],
)
def test_sizes_and_counts_without_meaning_are_refused_when_read(
    override, message, tmp_path, installed
):
    path = _write(tmp_path / "x.toml", "[train]\nsteps = 10\n")
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        config.load(path, [override], registry=installed)


# --------------------------------------------------------------------------- step milestones

MILESTONES = """
[train]
steps = 100
pretrain_steps = 40
milestones = { vgg_on = 50, mse_down = 70 }

[losses.mse]
weight = { schedule = "piecewise", boundaries = ["vgg_on", "mse_down"], values = [10, 10, 1] }

[losses.charb]
weight = { schedule = "linear", start = 0, end = 1, begin = "pretrain", steps = 10 }

[adversarial]
name = "modified"
weight = { schedule = "piecewise", boundaries = ["pretrain"], values = [0, 1e-3] }
"""


def test_milestones_resolve_to_numbers_when_read(tmp_path, registry):
    exp = config.load(_write(tmp_path / "x.toml", MILESTONES), registry=registry)
    assert exp.train.milestones == {"vgg_on": 50, "mse_down": 70}
    weights = {t.key: t.weight for t in exp.losses}
    assert weights["mse"].params["boundaries"] == (50, 70)
    assert weights["charb"].params["begin"] == 40  # "pretrain" is train.pretrain_steps
    assert exp.adversarial.weight.params["boundaries"] == (40,)
    # --set moves a milestone and every boundary that names it
    moved = config.load(tmp_path / "x.toml", ["train.milestones.vgg_on=60"], registry=registry)
    assert {t.key: t.weight for t in moved.losses}["mse"].params["boundaries"] == (60, 70)
    later = config.load(tmp_path / "x.toml", ["train.pretrain_steps=45"], registry=registry)
    assert later.adversarial.weight.params["boundaries"] == (45,)


def test_milestones_show_as_numbers_and_round_trip(tmp_path, with_registry):
    path = _write(tmp_path / "x.toml", MILESTONES)
    result = CliRunner().invoke(cli, ["show", str(path)], obj={"registry": with_registry})
    assert result.exit_code == 0, result.output
    assert '"vgg_on"' not in result.output and '"pretrain"' not in result.output
    assert "[train.milestones]" in result.output
    shown = _write(tmp_path / "shown.toml", result.output)
    assert config.load(shown, registry=with_registry) == config.load(path, registry=with_registry)
    flat = CliRunner().invoke(cli, ["show", str(path), "--flat"], obj={"registry": with_registry})
    assert "train.milestones.vgg_on = 50" in flat.output
    assert "losses.mse.weight.boundaries = [50, 70]" in flat.output


def test_unknown_milestone_is_named_with_a_suggestion(tmp_path, registry):
    text = MILESTONES.replace('["vgg_on", "mse_down"]', '["vgg_of", "mse_down"]')
    message = _error(_write(tmp_path / "x.toml", text), registry)
    assert 'key "mse.weight" in [losses]' in message and str(tmp_path / "x.toml") in message
    assert 'unknown milestone "vgg_of"' in message and 'Did you mean "vgg_on"?' in message
    assert "vgg_on = 50" in message and "pretrain = 40" in message
    path = _write(tmp_path / "y.toml", MILESTONES)
    message = _error(path, registry, ['losses.charb.weight.begin="pretrian"'])
    assert 'Did you mean "pretrain"?' in message and "--set losses.charb.weight" in message


@pytest.mark.parametrize(
    ("milestones", "expected"),
    [
        ("{ pretrain = 5 }", '"pretrain" is train.pretrain_steps'),
        ("{ VggOn = 5 }", "lowercase snake_case"),
        ('{ vgg_on = "soon" }', "must be a step number"),
        ("{ vgg_on = -1 }", "must be a step number"),
        ("3", "must be a table of step numbers"),
    ],
)
def test_bad_milestones_are_refused(tmp_path, registry, milestones, expected):
    path = _write(tmp_path / "x.toml", f"[train]\nmilestones = {milestones}\n")
    message = _error(path, registry)
    assert expected in message and "[train]" in message and str(path) in message


def test_a_milestone_name_is_only_taken_where_a_schedule_wants_a_step(tmp_path, registry):
    """A string in a schedule's non-step parameter stays a type error, not a milestone."""
    path = _write(
        tmp_path / "x.toml",
        "[train]\nmilestones = { a = 5 }\n\n[losses.mse]\n"
        'weight = { schedule = "piecewise", boundaries = [5], values = [1, "a"] }\n',
    )
    message = _error(path, registry)
    assert 'key "values" must be a number' in message and "unknown milestone" not in message


# --------------------------------------------------------------------------- weighted plugins


def test_losses_and_adversarial_are_one_kind_of_table(tmp_path, registry):
    path = _write(
        tmp_path / "x.toml",
        '[losses.charb]\nweight = 2.0\neps = 0.5\n\n[adversarial]\nname = "modified"\n'
        "smoothing = 0.1\n",
    )
    exp = config.load(path, registry=registry)
    (loss,) = exp.losses
    assert isinstance(loss, config.WeightedPlugin) and isinstance(exp.adversarial, type(loss))
    assert (loss.key, loss.plugin, loss.name, loss.weight) == ("charb", "charb", "charb", 2.0)
    adv = exp.adversarial
    assert (adv.key, adv.name, adv.weight, adv.params) == (
        "adversarial",
        "modified",
        1e-3,
        {"smoothing": 0.1},
    )
    message = _error(path, registry, ["adversarial.smoothnig=0.2"])
    assert 'adversarial "modified"' in message and 'Did you mean "smoothing"?' in message
    assert "is required" in _error(_write(tmp_path / "y.toml", "[adversarial]\n"), registry)


@pytest.mark.parametrize("table", ["losses.second", "adversarial", "generator", "data.degradation"])
def test_a_plugin_table_picks_its_plugin_with_name_only(table, tmp_path, with_registry):
    """One selector word, ``name``: ``plugin`` is one ``error:`` line that names ``name``."""
    path = _write(tmp_path / "x.toml", f'[{table}]\nplugin = "charb"\n')
    result = CliRunner().invoke(cli, ["show", str(path)], obj={"registry": with_registry})
    assert result.exit_code == 2
    (line,) = result.output.splitlines()
    assert line.startswith("error: ") and 'write name = "charb" instead of plugin = "charb"' in line


def test_the_default_recipe_is_the_one_place_naming_plugins(registry):
    exp = config.from_dict({}, registry=registry)
    assert exp.generator.name == config.DEFAULT_RECIPE["generator"]["name"] == "srresnet"
    assert exp.discriminator.name == config.DEFAULT_RECIPE["discriminator"]["name"] == "srgan"
    assert [t.key for t in exp.losses] == list(config.DEFAULT_RECIPE["losses"]) == ["mse"]
    assert exp.adversarial is None


def test_a_schedule_is_built_once_when_read(tmp_path):
    """Checking a schedule table (it must build) and probing its values (finite) use one build."""
    calls = []

    def counted(value: float = 1.0):
        calls.append(value)
        return lambda step: value

    class _Counted:
        @hookimpl
        def harness_register_schedules(self):
            return {"counted": counted}

    registry = build_registry(
        extra=[(_TestPlugin(), "test", "tests"), (_Counted(), "counted", "tests")],
        autoload=False,
    )
    path = _write(
        tmp_path / "x.toml",
        '[train]\nlearning_rate = { schedule = "counted", value = 2e-4 }\n\n'
        '[losses.mse]\nweight = { schedule = "counted", value = 3.0 }\n',
    )
    config.load(path, registry=registry)
    assert sorted(calls) == [2e-4, 3.0]
