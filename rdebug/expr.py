"""C expressions over a replay's state, for the command language's `print`.

    counter            the 4-byte int stored at the symbol `counter`
    &counter           its address
    $eax, $eip         registers (any of gdb's i386 description, cr0-cr4)
    *(int*)0x1000      memory through a cast pointer
    (unsigned char)x   a cast: truncates, and says how the value prints
    + - * / % & | ^ << >> ~ ! == != < > <= >= && || and parentheses, as in C (pointer
    + n scales by the size)

The guest has no type information here: a symbol is an `int` lvalue, a register an
`unsigned int`.  Knows only the Session's reading methods.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from rdebug.api import Session
from rdebug.errors import RdebugError, UsageError


@dataclass(frozen=True, slots=True)
class CType:
    """An integer type (size in bytes, signedness), or a pointer to `target`."""

    size: int
    signed: bool
    target: CType | None = None  # a pointer to this

    @property
    def name(self) -> str:
        if self.target is not None:
            return self.target.name + "*"
        base = {1: "char", 2: "short", 4: "int", 8: "long long"}[self.size]
        return base if self.signed else f"unsigned {base}"


INT = CType(4, True)
UINT = CType(4, False)
_BASE_TYPES = {
    "char": CType(1, True),
    "signed char": CType(1, True),
    "unsigned char": CType(1, False),
    "short": CType(2, True),
    "unsigned short": CType(2, False),
    "int": INT,
    "signed": INT,
    "unsigned": UINT,
    "unsigned int": UINT,
    "long": INT,
    "unsigned long": UINT,
    "long long": CType(8, True),
    "unsigned long long": CType(8, False),
    "int8_t": CType(1, True),
    "uint8_t": CType(1, False),
    "int16_t": CType(2, True),
    "uint16_t": CType(2, False),
    "int32_t": INT,
    "uint32_t": UINT,
    "int64_t": CType(8, True),
    "uint64_t": CType(8, False),
    "void": CType(1, False),
}


@dataclass(frozen=True, slots=True)
class Value:
    value: int  # within the type's range
    type: CType
    address: int | None = None  # where it is stored (an lvalue), if anywhere


def _fit(value: int, ctype: CType) -> int:
    bits = 32 if ctype.target is not None else ctype.size * 8
    value &= (1 << bits) - 1
    if ctype.target is None and ctype.signed and value >> (bits - 1):
        value -= 1 << bits
    return value


_TOKEN = re.compile(
    r"\s*(?:(?P<num>0[xX][0-9a-fA-F]+|\d+)|(?P<reg>\$[A-Za-z_]\w*)|(?P<name>[A-Za-z_][\w.]*)"
    r"|(?P<op><<|>>|<=|>=|==|!=|&&|\|\||[-+*/%&|^~!()<>]))"
)


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    at = 0
    text = text.rstrip()
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None or match.end() == at:
            raise UsageError(f"print: cannot read {text[at:].strip()!r} in {text!r}")
        out.append(match.group(match.lastgroup or "op"))
        at = match.end()
    return out


_BINARY = [
    ("||",),
    ("&&",),
    ("|",),
    ("^",),
    ("&",),
    ("==", "!="),
    ("<", ">", "<=", ">="),
    ("<<", ">>"),
    ("+", "-"),
    ("*", "/", "%"),
]
_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
    "&&": lambda a, b: bool(a) and bool(b),
    "||": lambda a, b: bool(a) or bool(b),
}


class _Parser:
    def __init__(self, session: Session, text: str) -> None:
        self.session = session
        self.text = text
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            want = f"{expected!r}" if expected else "more"
            raise UsageError(f"print: expected {want} in {self.text!r}")
        self.at += 1
        return token

    def parse(self) -> Value:
        value = self.binary(0)
        if self.peek() is not None:
            raise UsageError(f"print: unexpected {self.peek()!r} in {self.text!r}")
        return value

    def binary(self, level: int) -> Value:
        if level == len(_BINARY):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek() in _BINARY[level]:
            op = self.take()
            left = _arith(op, left, self.binary(level + 1))
        return left

    def cast_type(self) -> CType | None:
        """At '(': a type name and its stars, if that is what follows (else None)."""
        words: list[str] = []
        at = self.at + 1
        while at < len(self.tokens) and " ".join([*words, self.tokens[at]]) in _TYPE_PREFIXES:
            words.append(self.tokens[at])
            at += 1
        if not words or " ".join(words) not in _BASE_TYPES:
            return None
        ctype = _BASE_TYPES[" ".join(words)]
        while at < len(self.tokens) and self.tokens[at] == "*":
            ctype = CType(4, False, ctype)
            at += 1
        if at >= len(self.tokens) or self.tokens[at] != ")":
            return None
        self.at = at + 1
        return ctype

    def unary(self) -> Value:
        token = self.peek()
        if token == "(":
            ctype = self.cast_type()
            if ctype is not None:
                operand = self.unary()
                return Value(_fit(operand.value, ctype), ctype)
        if token in ("-", "~", "!", "+"):
            self.take()
            operand = self.unary()
            result = {
                "-": -operand.value,
                "~": ~operand.value,
                "!": int(not operand.value),
                "+": operand.value,
            }[token]
            ctype = INT if token == "!" else operand.type
            return Value(_fit(result, ctype), ctype)
        if token == "*":
            self.take()
            pointer = self.unary()
            target = pointer.type.target or INT
            return self.load(pointer.value & 0xFFFFFFFF, target)
        if token == "&":
            self.take()
            operand = self.unary()
            if operand.address is None:
                raise UsageError(f"print: cannot take the address of that in {self.text!r}")
            return Value(operand.address, CType(4, False, operand.type))
        return self.primary()

    def primary(self) -> Value:
        token = self.take()
        if token == "(":
            value = self.binary(0)
            self.take(")")
            return value
        if token[0].isdigit():
            number = int(token, 0)
            ctype = INT if number < 1 << 31 else UINT
            return Value(_fit(number, ctype), ctype)
        if token.startswith("$"):
            try:
                register = self.session.register(token[1:])
            except (KeyError, ValueError, RdebugError):
                raise UsageError(f"print: no register {token!r}") from None
            ctype = UINT if register < 1 << 32 else CType(8, False)
            return Value(_fit(register, ctype), ctype)
        if token in self.session.symbols:
            return self.load(self.session.symbols[token], INT)
        raise UsageError(f"print: no symbol {token!r} in the guest")

    def load(self, addr: int, ctype: CType) -> Value:
        size = 4 if ctype.target is not None else ctype.size
        try:
            data = self.session.read_memory(addr, size)
        except RdebugError:
            raise UsageError(f"print: cannot read memory at {addr:#x}") from None
        return Value(_fit(int.from_bytes(data, "little"), ctype), ctype, addr)


_TYPE_PREFIXES = {
    " ".join(name.split()[:n]) for name in _BASE_TYPES for n in range(1, len(name.split()) + 1)
}


def _arith(op: str, left: Value, right: Value) -> Value:
    a, b = left.value, right.value
    if op in _COMPARE:
        return Value(int(_COMPARE[op](a, b)), INT)
    if op in "+-" and left.type.target is not None and right.type.target is None:
        b *= left.type.target.size  # pointer arithmetic
        ctype = left.type
    elif left.type.target is not None or right.type.target is not None:
        ctype = UINT
    else:
        size = max(left.type.size, right.type.size, 4)
        signed = (left.type.signed or left.type.size < 4) and (
            right.type.signed or right.type.size < 4
        )
        ctype = CType(size, signed)
    if op in "/%" and b == 0:
        raise UsageError("print: division by zero")
    match op:
        case "+":
            result = a + b
        case "-":
            result = a - b
        case "*":
            result = a * b
        case "/":
            result = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)
        case "%":
            result = a - b * (abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1))
        case "&":
            result = a & b
        case "|":
            result = a | b
        case "^":
            result = a ^ b
        case "<<":
            result = a << (b & 63)
        case _:
            result = a >> (b & 63)
    return Value(_fit(result, ctype), ctype)


def evaluate(session: Session, text: str) -> Value:
    """The value of the C expression `text` in the session's current state."""
    if not text.strip():
        raise UsageError("print: no expression")
    return _Parser(session, text).parse()


def show(value: Value, fmt: str | None, session: Session) -> str:
    """`value` as `print` shows it: in `fmt` (x d u o t c) or as its type says."""
    ctype = value.type
    bits = 32 if ctype.target is not None else ctype.size * 8
    unsigned = value.value & ((1 << bits) - 1)
    match fmt:
        case "x":
            return hex(unsigned)
        case "o":
            return oct(unsigned).replace("0o", "0")
        case "t":
            return bin(unsigned)[2:]
        case "d":
            return str(unsigned - (1 << bits) if unsigned >> (bits - 1) else unsigned)
        case "u":
            return str(unsigned)
        case "c":
            return f"{unsigned & 0xFF} {char(unsigned & 0xFF)}"
    if ctype.target is not None:
        name = session.symbol(unsigned) if unsigned >= 0x1000 else None
        return f"({ctype.name}) {unsigned:#x}" + (f" <{name}>" if name else "")
    if ctype.size == 1:
        return f"{value.value} {char(unsigned)}"
    return str(value.value)


_ESCAPES = {0: "\\000", 7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r"}


def char(code: int) -> str:
    """A byte as gdb shows a char: 'A', '\\n', '\\377'."""
    if code in _ESCAPES:
        return f"'{_ESCAPES[code]}'"
    if 32 <= code < 127:
        return "'\\''" if code == 39 else "'\\\\'" if code == 92 else f"'{chr(code)}'"
    return f"'\\{code:03o}'"
