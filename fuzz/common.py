"""What every atheris harness shares: instrumenting the parser's modules and starting libFuzzer."""

from __future__ import annotations

import inspect
import sys
import types
import warnings
from collections.abc import Callable


def instrument(prefixes: list[str]) -> int:
    """Add coverage instrumentation to every function defined in the loaded modules named by
    ``prefixes`` (a package name covers its submodules); returns how many were instrumented."""
    import atheris

    count = 0
    for name, module in list(sys.modules.items()):
        if module is None or not any(name == p or name.startswith(p + ".") for p in prefixes):
            continue
        for value in list(vars(module).values()):
            for function in _functions(value, name):
                try:
                    atheris.instrument_func(function)
                    count += 1
                except Exception:  # builtins, C functions and the like
                    pass
    return count


def _functions(value, module_name: str):
    if isinstance(value, types.FunctionType) and value.__module__ == module_name:
        yield value
    elif inspect.isclass(value) and value.__module__ == module_name:
        for member in vars(value).values():
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if isinstance(member, property):
                yield from (f for f in (member.fget, member.fset) if isinstance(f, types.FunctionType))
            elif isinstance(member, types.FunctionType):
                yield member


def main(check: Callable[[bytes], None], modules: list[str]) -> None:
    """Run ``check`` under libFuzzer with the command line's libFuzzer options and corpus folders."""
    import atheris

    warnings.simplefilter("ignore")  # pydicom warns on every malformed value: noise, and slow
    print(f"instrumented {instrument(modules)} functions", file=sys.stderr)
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


def by_first_byte(data: bytes, even: Callable[[bytes], None], odd: Callable[[bytes], None]) -> None:
    """Give the rest of ``data`` to ``even`` or ``odd`` by its first byte: one harness, two kinds of input."""
    if data:
        (even if data[0] % 2 == 0 else odd)(data[1:])
