"""Tests of `catsdogs_helpers.source`: the package's code shown in the notebook, without docstrings."""

from catsdogs_helpers import models, source, training


def test_format_source_shows_the_code_without_docstrings():
    shown = source.format_source(models.build_transfer_model)
    assert shown.startswith("```python\ndef build_transfer_model(") and shown.endswith("\n```")
    assert "x = base(x, training=False)" in shown
    assert '"""' not in shown and "Args:" not in shown


def test_format_source_joins_several_functions_in_order():
    shown = source.format_source(training.build_stage_callbacks, training.train_stage)
    assert shown.index("def build_stage_callbacks(") < shown.index("def train_stage(")
    assert "AtomicBackupAndRestore(" in shown and "model.fit(" in shown


def test_strip_docstrings_keeps_other_strings():
    code = 'class A:\n    """Doc."""\n\n    def f(self):\n'
    code += '        """Doc\n        on two lines."""\n        return "kept"\n'
    assert source.strip_docstrings(code) == 'class A:\n\n    def f(self):\n        return "kept"\n'
