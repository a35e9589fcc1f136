"""``acmtl train --set SECTION.FIELD=VALUE``: safe parsing, type checks against the dataclasses, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from acmtl.core.model import ModelConfig
from acmtl.core.train import TrainConfig
from acmtl.overrides import MODEL_FILLED_IN, Overrides, parse_overrides, parse_value, settable_fields


@pytest.mark.parametrize("text, value", [
    ("10", 10), ("-1", -1), ("1e-4", 1e-4), ("0.5", 0.5),
    ("true", True), ("false", False), ("null", None), ("True", True),
    ("[3,9]", [3, 9]), ("(3, 9)", (3, 9)), ("[true, 'true', null]", [True, "true", None]),
    ("'quoted words'", "quoted words"), ("paper", "paper"), ("bert-base-chinese", "bert-base-chinese"),
    ("/some/dir", "/some/dir"), ("", ""),
    ("__import__('os').system('false')", "__import__('os').system('false')"),  # never evaluated
])
def test_parse_value_is_literal_only(text, value):
    parsed = parse_value(text)
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize("item, section, name, value", [
    ("train.patience=10", "train", "patience", 10),  # int
    ("train.encoder_lr=3e-5", "train", "encoder_lr", 3e-5),  # float
    ("train.warmup=0", "train", "warmup", 0.0),  # an int is a fine float, and becomes one
    ("train.precision=bf16", "train", "precision", "bf16"),  # Literal
    ("model.use_pinyin=false", "model", "use_pinyin", False),  # bool, JSON style
    ("model.use_cnn=True", "model", "use_cnn", True),  # bool, Python style
    ("model.cnn_block=paper", "model", "cnn_block", "paper"),  # Literal, a plain word
    ("model.cnn_merge='max'", "model", "cnn_merge", "max"),  # Literal, quoted
    ("model.cnn_kernels=[3,9]", "model", "cnn_kernels", (3, 9)),  # tuple[int, ...] from a list
    ("model.cnn_kernels=(5,)", "model", "cnn_kernels", (5,)),  # ... or a tuple
    ("model.cnn_kernels=[]", "model", "cnn_kernels", ()),
    ("model.dropout=0.3", "model", "dropout", 0.3),
    ("model.encoder=/some/dir", "model", "encoder", "/some/dir"),  # str
    ("model.encoder=123", "model", "encoder", "123"),  # a str field takes the text as typed
])
def test_each_type_parses(item, section, name, value):
    parsed = getattr(parse_overrides([item]), section)[name]
    assert parsed == value and type(parsed) is type(value)


def test_optional_fields_take_null_or_the_type():
    from dataclasses import dataclass

    @dataclass
    class Config:
        size: int | None = None
        kernels: tuple[int, ...] | None = None

    def parse(item: str) -> Overrides:
        return parse_overrides([item], train_cls=Config, model_cls=Config)

    assert parse("train.size=null").train == {"size": None}
    assert parse("train.size=7").train == {"size": 7}
    assert parse("model.kernels=[1,2]").model == {"kernels": (1, 2)}
    with pytest.raises(ValueError, match=r"^train\.size: expected an int or null, got 'big'$"):
        parse("train.size=big")
    with pytest.raises(ValueError, match="expected an int or null"):
        parse("train.size=true")


def test_several_settings_last_one_wins():
    result = parse_overrides(["train.patience=10", "model.use_pinyin=false", "train.patience=12"])
    assert result == Overrides(train={"patience": 12}, model={"use_pinyin": False})
    assert parse_overrides([]) == Overrides()


@pytest.mark.parametrize("item, expected", [
    ("train.precision=fp16", "one of 'auto', 'fp32', 'bf16'"),
    ("model.mtl=null", "one of 'none', 'hard', 'soft'"),
    ("model.cnn_block=1", "one of 'paper', 'residual'"),
])
def test_literal_rejects_other_values(item, expected):
    with pytest.raises(ValueError, match=f"expected {expected}") as err:
        parse_overrides([item])
    assert "\n" not in str(err.value) and item.split("=")[0] in str(err.value)


@pytest.mark.parametrize("item", ["train.patience=true", "train.epochs=False", "model.cnn_channels=true",
                                  "train.encoder_lr=true", "model.cnn_kernels=[3,true]"])
def test_a_bool_is_not_an_int(item):
    with pytest.raises(ValueError, match=r"expected (an int|a number|a list of ints)"):
        parse_overrides([item])


@pytest.mark.parametrize("item, expected", [
    ("train.patience=1.5", "an int"), ("train.patience=ten", "an int"), ("train.patience=", "an int"),
    ("model.use_pinyin=1", r"a bool \(true or false\)"), ("model.use_pinyin=yes", "a bool"),
    ("model.cnn_kernels=3", "a list of ints"), ("model.cnn_kernels=[3,'5']", "a list of ints"),
    ("model.cnn_kernels=[3,", "a list of ints"), ("train.head_lr=fast", "a number"),
])
def test_bad_values_name_the_expected_type(item, expected):
    with pytest.raises(ValueError, match=f"^{item.split('=')[0]}: expected {expected}") as err:
        parse_overrides([item])
    assert "\n" not in str(err.value)


def test_unknown_key_lists_the_known_keys_of_its_section():
    with pytest.raises(ValueError) as err:
        parse_overrides(["train.patiense=10"])
    message = str(err.value)
    assert "\n" not in message and "'train.patiense'" in message
    assert message.endswith("known train keys: " + ", ".join(sorted(settable_fields(TrainConfig))))
    assert "lstm_hidden" not in message  # only the section's own keys

    with pytest.raises(ValueError) as err:
        parse_overrides(["model.kernel_sizes=[3]"])
    model_keys = str(err.value).split("known model keys: ")[1].split(", ")
    assert "cnn_kernels" in model_keys and "patience" not in model_keys
    assert not MODEL_FILLED_IN & set(model_keys)  # filled in by the code: not settable


@pytest.mark.parametrize("field", sorted(MODEL_FILLED_IN))
def test_fields_the_code_fills_in_are_refused(field):
    with pytest.raises(ValueError, match="set by the code"):
        parse_overrides([f"model.{field}=1"])


@pytest.mark.parametrize("item, expected", [
    ("patience=10", "must start with train. or model."), ("optimizer.lr=1", "must start with train. or model."),
    ("train.patience", "expects SECTION.FIELD=VALUE"), ("=3", "expects SECTION.FIELD=VALUE"),
])
def test_malformed_keys(item, expected):
    with pytest.raises(ValueError, match=expected):
        parse_overrides([item])


@pytest.mark.parametrize("section, defaults", [
    ("train", asdict(TrainConfig())),
    ("model", {k: v for k, v in asdict(ModelConfig(tags=["O"])).items() if k not in MODEL_FILLED_IN}),
])
def test_every_settable_field_takes_its_own_default(section, defaults):
    """Each field's default, written as JSON on the command line, passes its own type check unchanged."""
    items = [f"{section}.{name}={json.dumps(value)}" for name, value in defaults.items()]
    assert getattr(parse_overrides(items), section) == defaults


def test_cli_unknown_key_is_a_one_line_error_with_exit_code_2(tiny_corpus_dir):
    result = subprocess.run([sys.executable, "-m", "acmtl", "train", "--corpus", f"tiny={tiny_corpus_dir}",
                             "--set", "model.use_pinyn=false"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.startswith("acmtl train: error: --set: unknown key 'model.use_pinyn'; known model keys: ")


@pytest.mark.parametrize("via", ["run_cache", "out"])
def test_cli_trains_with_set(via, tiny_corpus_dir, tmp_path):
    """A tiny BiLSTM-CRF, one epoch: the --set values reach the run's record and the saved model."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "acmtl", "train", "--corpus", f"tiny={tiny_corpus_dir}", "--model", "bilstm_crf",
           "--profile", "smoke", "--epochs", "3", "--quiet", "--checkpoint-every", "0",
           "--set", "train.epochs=1", "--set", "train.batch_size=16", "--set", "model.lstm_hidden=24",
           "--set", "model.char_dim=16", "--set", "model.constrained_decoding=false"]
    if via == "out":
        cmd += ["--out", str(out)]
    env = {**os.environ, "ACMTL_RUNS": str(tmp_path / "runs"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    if via == "out":
        assert run_dir == out
    else:
        assert run_dir.parent == tmp_path / "runs"
        record = json.loads((run_dir / "run.json").read_text())
        assert record["train"]["epochs"] == 1 and record["train"]["batch_size"] == 16
        assert record["model"]["lstm_hidden"] == 24 and record["model"]["constrained_decoding"] is False
    model = json.loads((run_dir / "model" / "config.json").read_text())["model"]
    assert (model["lstm_hidden"], model["char_dim"], model["constrained_decoding"]) == (24, 16, False)
    assert json.loads((run_dir / "metrics.json").read_text())["epochs_run"] == 1
