"""`tfp_vae.flags`: a flag per config field, from the fields' metadata."""

import argparse
import dataclasses

import pytest

from tfp_vae.config import ModelConfig, TrainingConfig, flag_name
from tfp_vae.flags import add_config_flags, given_fields, int_at_least, number

# Fields that are set from Python (or a recipe) only: shapes, option dicts, expert switches.
_NO_FLAG = {"input_shape", "network_options", "prior_options", "jit_compile", "select_best"}


def _parser():
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_config_flags(parser)
    return parser


def test_every_config_field_has_a_flag_unless_it_says_none():
    names = [f.name for c in (ModelConfig, TrainingConfig) for f in dataclasses.fields(c)]
    assert {n for n in names if flag_name(n) is None} == _NO_FLAG
    flags = {action.dest: action.option_strings for action in _parser()._actions}
    for name in set(names) - _NO_FLAG:
        key = "model" if name in {f.name for f in dataclasses.fields(ModelConfig)} else "training"
        assert flag_name(name) in flags[f"{key}.{name}"]


def test_flag_names_keep_their_command_line_spelling():
    assert flag_name("num_samples") == "--kl-samples"
    assert flag_name("kind") == "--model"
    assert flag_name("tensorboard_dir") == "--tensorboard"
    assert flag_name("plots") == "--no-plots"
    assert flag_name("kl_attachment") == "--kl-attachment"
    assert flag_name("no_such_field") is None


def test_given_fields_holds_only_what_was_typed_in_either_spelling():
    args = _parser().parse_args(["--dataset", "fashion-mnist", "--kl-attachment", "loss",
                                 "--dtype-policy", "mixed_bfloat16", "--image-size", "32", "30",
                                 "--seed", "-3", "--no-plots", "--kl-samples", "4"])
    given = given_fields(args)
    assert given == {
        "model": {"kl_attachment": "loss-fn", "dtype_policy": "mixed-bfloat16", "num_samples": 4},
        "training": {"data": "fashion-mnist", "image_size": [32, 30], "seed": -3,
                     "plots": False}}
    model = ModelConfig(**given["model"])
    training = TrainingConfig(**given["training"])
    assert (model.kl_attachment, model.dtype_policy) == ("loss", "mixed_bfloat16")
    assert (training.data, training.image_size, training.plots) == (
        "fashion_mnist", (32, 30), False)
    assert given_fields(_parser().parse_args([])) == {"model": {}, "training": {}}


def test_help_shows_the_config_defaults_in_command_line_spelling():
    text = _parser().format_help()
    assert "--kl-attachment {loss-fn,add-loss,regularizer}" in text
    assert "(default: loss-fn)" in text and "(default: fashion-mnist)" in text
    assert "--latent-dim LATENT_DIM" in text and "--tensorboard DIR" in text
    assert "training (TrainingConfig)" in text and "model (ModelConfig)" in text


@pytest.mark.parametrize("parse, text, message", [
    (int_at_least(1), "0", "expected a positive integer, got '0'"),
    (int_at_least(0), "-1", "expected an integer >= 0, got '-1'"),
    (int_at_least(1), "2.5", "expected a positive integer, got '2.5'"),
    (number(), "-1", "expected a finite non-negative number, got '-1'"),
    (number(), "inf", "expected a finite non-negative number"),
    (number(positive=True), "0", "expected a positive number, got '0'"),
    (number(), "x", "expected a number, got 'x'"),
])
def test_numeric_types_refuse_bad_text_in_one_sentence(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message.replace(".", r"\.")):
        parse(text)


def test_numeric_types_accept_their_range():
    assert int_at_least(0)("0") == 0 and int_at_least(1)("7") == 7
    assert number()("0") == 0.0 and number(positive=True)("1e-4") == 1e-4
