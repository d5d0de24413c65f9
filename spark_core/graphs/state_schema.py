"""Typed state schemas: ``MissionStateModel`` (a dataclass-style base) or pydantic models.

```python
class MissionState(MissionStateModel):
    counter: int = 0
    notes: list[str] = []
```

Declared fields are type-checked on every state write (basic types, ``Optional``/``Union``,
``list[...]``, ``dict[...]``, ``Literal``, ``Any``, classes); keys that the schema does not
declare are allowed, and keys starting with ``_spark_`` are never checked. Mutable defaults are
copied per instance. A pydantic ``BaseModel`` subclass is accepted as a schema too; the
state then stores the values as the model converted them (``"3"`` for an ``int`` is ``3``).
"""

from __future__ import annotations

import copy
import sys
import typing
from typing import Any, Dict, Optional, Tuple

from spark_core.errors import StateValidationError

RESERVED_PREFIX = "_spark_"
_MISSING = object()


class MissionStateModel:
    """Base class of typed graph-state schemas (declare fields as annotated class attributes).

    ``MissionState(counter=3)`` builds an instance: missing fields take their defaults (a
    field without default is required), declared fields are type-checked and extra keyword
    arguments are kept as attributes.
    """

    __spark_fields__: Dict[str, Any] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields: Dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            for name, annotation in vars(klass).get("__annotations__", {}).items():
                if name.startswith("_") or "ClassVar" in str(annotation):
                    continue
                fields[name] = getattr(cls, name, _MISSING)
        cls.__spark_fields__ = fields
        cls._spark_hints = None  # type: ignore[attr-defined]

    def __init__(self, **data: Any) -> None:
        """Build an instance from keyword arguments.

        Args:
            **data: Field values; missing fields take their defaults.

        Raises:
            StateValidationError: A required field is missing or a value has the wrong type.
        """
        values = dict(data)
        for name, default in type(self).__spark_fields__.items():
            if name not in values:
                if default is _MISSING:
                    raise StateValidationError(
                        f"{type(self).__name__}: required field {name!r} is missing"
                    )
                values[name] = copy.deepcopy(default)
        type(self).validate(values)
        for name, value in values.items():
            setattr(self, name, value)

    @classmethod
    def field_types(cls) -> Dict[str, Any]:
        """Return the declared fields' types.

        Returns:
            Field name -> resolved type (``Any`` where it cannot be resolved).
        """
        hints = cls.__dict__.get("_spark_hints")
        if hints is None:
            hints = {}
            module = sys.modules.get(cls.__module__)
            namespace = dict(vars(module)) if module is not None else {}
            for klass in reversed(cls.__mro__):
                for name, annotation in vars(klass).get("__annotations__", {}).items():
                    if name in cls.__spark_fields__:
                        hints[name] = _resolve(annotation, namespace)
            cls._spark_hints = hints  # type: ignore[attr-defined]
        return dict(hints)

    @classmethod
    def defaults(cls) -> Dict[str, Any]:
        """Return the default value of every field that has one.

        Returns:
            Field name -> a fresh copy of its default.
        """
        return {
            name: copy.deepcopy(default)
            for name, default in cls.__spark_fields__.items()
            if default is not _MISSING
        }

    @classmethod
    def validate(cls, values: Dict[str, Any]) -> None:
        """Check the declared fields present in ``values``; other keys are ignored.

        Args:
            values: Keys and values to check.

        Raises:
            StateValidationError: A value does not match its field's type.
        """
        types = cls.field_types()
        for name, value in values.items():
            if name in types and not _matches(value, types[name]):
                raise StateValidationError(
                    f"{cls.__name__}.{name}: expected {_type_name(types[name])}, "
                    f"got {type(value).__name__} {value!r:.80}"
                )

    def to_dict(self) -> Dict[str, Any]:
        """Return the instance's fields (and extra attributes) as a dict.

        Returns:
            Field name -> value.
        """
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def model_dump(self) -> Dict[str, Any]:
        """Alias of :meth:`to_dict` (pydantic's spelling).

        Returns:
            Field name -> value.
        """
        return self.to_dict()

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, MissionStateModel)
            and type(other) is type(self)
            and (self.to_dict() == other.to_dict())
        )

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return f"{type(self).__name__}({fields})"


def _resolve(annotation: Any, namespace: Dict[str, Any]) -> Any:
    if not isinstance(annotation, str):
        return annotation
    holder = type("_Holder", (), {"__annotations__": {"field": annotation}})
    try:
        return typing.get_type_hints(holder, globalns=namespace)["field"]
    except Exception:  # e.g. "int | None" on Python 3.9: do not check that field
        return Any


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _matches(value: Any, tp: Any) -> bool:  # noqa: C901 - one case per typing form
    if tp is Any or tp is object:
        return True
    if tp is None or tp is type(None):
        return value is None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or (
        origin is not None and type(tp).__name__ == "UnionType"
    ):
        return any(_matches(value, arg) for arg in args)
    if origin is typing.Literal:
        return value in args
    if origin in (list, typing.List, set, frozenset, tuple):
        if not isinstance(value, (list, tuple, set, frozenset)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(args) == len(value) and all(
                _matches(v, a) for v, a in zip(value, args)
            )
        inner = args[0] if args else Any
        return all(_matches(item, inner) for item in value)
    if origin in (dict, typing.Dict):
        if not isinstance(value, dict):
            return False
        key_t, val_t = args if len(args) == 2 else (Any, Any)
        return all(_matches(k, key_t) and _matches(v, val_t) for k, v in value.items())
    if origin is not None:
        return isinstance(value, origin) if isinstance(origin, type) else True
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def _is_pydantic(schema: Any) -> bool:
    return isinstance(schema, type) and hasattr(schema, "model_validate")


def check_schema(schema: Any) -> None:
    """Raise ``StateValidationError`` unless ``schema`` is a usable state schema.

    Args:
        schema: A ``MissionStateModel`` subclass, a pydantic model class, or ``None``.
    """
    if schema is None or _is_pydantic(schema):
        return
    if not (isinstance(schema, type) and issubclass(schema, MissionStateModel)):
        raise StateValidationError(
            f"state_schema must be a MissionStateModel subclass or a pydantic model, "
            f"got {schema!r}"
        )


def schema_defaults(schema: Any) -> Dict[str, Any]:
    """Return the default values a schema declares.

    Args:
        schema: The schema (or ``None``).

    Returns:
        Field name -> default value.
    """
    if schema is None:
        return {}
    if _is_pydantic(schema):
        out: Dict[str, Any] = {}
        for name, info in schema.model_fields.items():
            if not info.is_required():
                out[name] = info.get_default(call_default_factory=True)
        return out
    return dict(schema.defaults())


def validate_values(
    schema: Any, current: Dict[str, Any], updates: Dict[str, Any]
) -> Dict[str, Any]:
    """Validate ``updates`` (about to be merged into ``current``) against ``schema``.

    Args:
        schema: The schema (or ``None``: nothing to check).
        current: The state before the write.
        updates: The keys being written (JSON values).

    Returns:
        The values to store: ``updates``, with declared fields of a pydantic schema as the
        model converted them (``"3"`` for an ``int`` field is stored as ``3``).

    Raises:
        StateValidationError: A declared field would get a value of the wrong type.
    """
    if schema is None:
        return updates
    checked = {k: v for k, v in updates.items() if not k.startswith(RESERVED_PREFIX)}
    if not checked:
        return updates
    if _is_pydantic(schema):
        declared = set(schema.model_fields).intersection(checked)
        if not declared:
            return updates
        merged = {
            k: v for k, v in {**current, **checked}.items() if k in schema.model_fields
        }
        try:
            model = schema.model_validate(merged)
            converted = model.model_dump(mode="json", include=declared)
        except Exception as exc:
            raise StateValidationError(f"{schema.__name__}: {exc}") from None
        return {**updates, **converted}
    schema.validate(checked)
    return updates


def to_model(schema: Any, data: Dict[str, Any]) -> Any:
    """Build a schema instance from state data (declared fields; extras for our base).

    Args:
        schema: The schema class.
        data: The state.

    Returns:
        The model instance.
    """
    public = {k: v for k, v in data.items() if not k.startswith(RESERVED_PREFIX)}
    if _is_pydantic(schema):
        try:
            return schema.model_validate(public)
        except Exception as exc:
            raise StateValidationError(f"{schema.__name__}: {exc}") from None
    return schema(**public)


def from_model(model: Any) -> Tuple[Optional[type], Dict[str, Any]]:
    """Return ``(schema class, data dict)`` of a model instance.

    Args:
        model: A ``MissionStateModel`` or pydantic model instance.

    Returns:
        Its class and its data.

    Raises:
        StateValidationError: ``model`` is not a model instance.
    """
    if isinstance(model, MissionStateModel):
        return type(model), model.to_dict()
    dump = getattr(model, "model_dump", None)
    if callable(dump):
        return type(model), dict(dump())
    raise StateValidationError(
        f"expected a state model instance, got {type(model).__name__}"
    )


__all__ = [
    "MissionStateModel",
    "RESERVED_PREFIX",
    "check_schema",
    "schema_defaults",
    "validate_values",
    "to_model",
    "from_model",
]
