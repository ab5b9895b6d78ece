"""Metadata filters in OpenAI's vector-store grammar: comparisons combined with and/or."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
FilterValue = Annotated[str, Field(max_length=1024)] | int | FiniteFloat | bool
# A metadata key, or a dotted path into nested metadata (no empty segment).
FilterKey = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*$")
]


class ComparisonFilter(BaseModel):
    """`metadata[key] <type> value`; `in`/`nin` take a list."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]
    key: FilterKey
    value: FilterValue | Annotated[list[FilterValue], Field(min_length=1, max_length=256)]

    @model_validator(mode="after")
    def _value_fits_operator(self) -> Self:
        is_list = isinstance(self.value, list)
        if self.type in ("in", "nin") and not is_list:
            raise ValueError(f"'{self.type}' needs a list value")
        if self.type not in ("in", "nin") and is_list:
            raise ValueError(f"'{self.type}' needs a single value, not a list")
        numeric = isinstance(self.value, int | float) and not isinstance(self.value, bool)
        if self.type in ("gt", "gte", "lt", "lte") and not numeric:
            raise ValueError(f"'{self.type}' compares numbers; got {self.value!r}")
        return self


class CompoundFilter(BaseModel):
    """All (`and`) or any (`or`) of the nested filters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["and", "or"]
    filters: Annotated[list[ComparisonFilter | CompoundFilter], Field(min_length=1, max_length=32)]


Filter = ComparisonFilter | CompoundFilter
