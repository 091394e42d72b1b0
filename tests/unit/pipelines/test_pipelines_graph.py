from __future__ import annotations

import pandas as pd
import pytest

from noria.errors import ConfigError
from noria.pipelines import Pipeline, PipelineDefinitionError, step


@step
def a(n: int) -> int:
    return n


@step
def b(a: int) -> int:
    return a + 1


@step
def c(a: int, b: int, label: str = "c") -> str:
    return f"{label}{a + b}"


def test_order_edges_and_downstream() -> None:
    p = Pipeline("abc", [c, b, a], params={"n": 1})
    assert p.order == ["a", "b", "c"]
    assert p.edges == [("a", "b", "a"), ("a", "c", "a"), ("b", "c", "b")]
    assert p.downstream(["b"]) == {"b", "c"}
    assert p.nodes["c"].params == ("label",)
    info = p.describe()
    assert [s["name"] for s in info["steps"]] == ["a", "b", "c"]
    assert info["steps"][2]["inputs"] == {"a": "a", "b": "b"}


def test_steps_stay_plain_callables() -> None:
    assert b(1) == 2
    assert c(1, 2, label="x") == "x3"


def test_cycle_is_named() -> None:
    @step
    def x(y: int) -> int:
        return y

    @step
    def y(x: int) -> int:
        return x

    with pytest.raises(PipelineDefinitionError, match="cycle") as err:
        Pipeline("loop", [x, y])
    assert "x" in err.value.message and "y" in err.value.message
    assert isinstance(err.value, ConfigError)


def test_self_dependency() -> None:
    @step(outputs=("out",))
    def s(out: int) -> int:
        return out

    with pytest.raises(PipelineDefinitionError, match="its own output"):
        Pipeline("self", [s])


def test_missing_input_suggests_a_name() -> None:
    @step
    def needs(bb: int) -> int:
        return bb

    with pytest.raises(PipelineDefinitionError, match="needs 'bb'") as err:
        Pipeline("miss", [a, b, needs], params={"n": 1})
    assert err.value.fix is not None and "did you mean 'b'" in err.value.fix


def test_duplicate_step_and_output_names() -> None:
    @step(name="a")
    def other(n: int) -> int:
        return n

    with pytest.raises(PipelineDefinitionError, match="two steps named 'a'"):
        Pipeline("dup", [a, other], params={"n": 1})

    @step(outputs=("a",))
    def also_a(n: int) -> int:
        return n

    with pytest.raises(PipelineDefinitionError, match="produced by both"):
        Pipeline("dup", [a, also_a], params={"n": 1})


def test_parameter_named_like_an_output_is_ambiguous() -> None:
    with pytest.raises(PipelineDefinitionError, match="both a parameter and the output"):
        Pipeline("amb", [a, b], params={"n": 1, "b": 3})


def test_bad_names_and_signatures() -> None:
    with pytest.raises(PipelineDefinitionError, match="pipeline name"):
        Pipeline("Bad Name", [a])
    with pytest.raises(PipelineDefinitionError, match="not a step"):
        Pipeline("p", [len])  # type: ignore[list-item]
    with pytest.raises(PipelineDefinitionError, match="no steps"):
        Pipeline("p", [])
    with pytest.raises(PipelineDefinitionError, match="identifier"):
        step(outputs=("not-valid",))(lambda: 1)
    with pytest.raises(PipelineDefinitionError, match="more than once"):
        step(name="dup", outputs=("o", "o"))(lambda: 1)

    def star(*rows: int) -> int:
        return 0

    with pytest.raises(PipelineDefinitionError, match="variadic positional"):
        step(star)


def test_params_resolve_and_validate() -> None:
    p = Pipeline("abc", [a, b, c], params={"n": 1})
    assert p.resolve_params({"label": "z"}) == {"n": 1, "label": "z"}
    with pytest.raises(PipelineDefinitionError, match="no parameter 'nn'") as err:
        p.resolve_params({"nn": 2})
    assert err.value.fix is not None and "label" in err.value.fix and "n" in err.value.fix
    # lax coercion to the annotation, as a CLI --param n=5 gives text when not JSON
    assert p.step_params("a", {"n": "5"}) == {"n": 5}
    with pytest.raises(PipelineDefinitionError, match="parameter 'n' of step 'a' got 'five'"):
        p.step_params("a", {"n": "five"})
    with pytest.raises(PipelineDefinitionError, match="not JSON-able"):
        p.resolve_params({"n": object()})
    assert p.step_params("c", {}) == {"label": "c"}


def test_multiple_outputs_must_match_declaration() -> None:
    @step(outputs=("left", "right"))
    def split(n: int) -> tuple[int, int]:
        return n, n

    assert split.split_outputs((1, 2)) == {"left": 1, "right": 2}
    with pytest.raises(PipelineDefinitionError, match="returned a tuple of 3"):
        split.split_outputs((1, 2, 3))
    with pytest.raises(PipelineDefinitionError, match="returned a DataFrame"):
        split.split_outputs(pd.DataFrame())
