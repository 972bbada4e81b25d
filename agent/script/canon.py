"""The canonical text of a parsed script or condition, for ``ioinctl explain``: numbers in
``0x`` hex, every binary operation in parentheses, four-space indents. Parsing it gives the
same tree back."""

from __future__ import annotations

from agent.script import nodes as n

__all__ = ["canonical"]


def canonical(tree: n.Block | n.Expr) -> str:
    if isinstance(tree, n.Block):
        return "\n".join(_stmt(s, 0) for s in tree.body)
    return _expr(tree)


def _expr(e: n.Expr) -> str:
    match e:
        case n.Num(value=v):
            return f"0x{v:x}"
        case n.Str(value=v, wide=wide):
            escaped = v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
            escaped = escaped.replace("\t", "\\t")
            return ("L" if wide else "") + f'"{escaped}"'
        case n.Var(scope=n.Scope.ADDR, name=name, target=target):
            return "&" + (target.value if target else "") + name
        case n.Var(scope=scope, name=name):
            return scope.value + name
        case n.Unary(op=op, operand=inner):
            return f"{op}{_expr(inner)}"
        case n.Binary(op=op, left=left, right=right):
            return f"({_expr(left)} {op} {_expr(right)})"
        case n.Call(name=name, args=args):
            return f"{name}({', '.join(_expr(a) for a in args)})"
    raise AssertionError(e)


def _simple(s: n.Stmt) -> str:
    if isinstance(s, n.Assign):
        target = _expr(s.target)
        if s.value is None:
            return f"{target}{s.op}"
        return f"{target} {s.op} {_expr(s.value)}"
    assert isinstance(s, n.ExprStmt)
    return _expr(s.expr)


def _block(b: n.Block, depth: int) -> str:
    pad = "    " * depth
    inner = "\n".join(_stmt(s, depth + 1) for s in b.body)
    return "{\n" + (inner + "\n" if inner else "") + pad + "}"


def _stmt(s: n.Stmt, depth: int) -> str:
    pad = "    " * depth
    match s:
        case n.Assign() | n.ExprStmt():
            return f"{pad}{_simple(s)};"
        case n.Block():
            return pad + _block(s, depth)
        case n.If(branches=branches, orelse=orelse):
            words = ["if"] + ["elsif"] * (len(branches) - 1)
            text = " ".join(
                f"{w} ({_expr(c)}) {_block(b, depth)}"
                for w, (c, b) in zip(words, branches, strict=True)
            )
            return pad + text + (f" else {_block(orelse, depth)}" if orelse else "")
        case n.While(cond=cond, body=body):
            return f"{pad}while ({_expr(cond)}) {_block(body, depth)}"
        case n.DoWhile(cond=cond, body=body):
            return f"{pad}do {_block(body, depth)} while ({_expr(cond)});"
        case n.For(init=init, cond=cond, step=step, body=body):
            head = ", ".join(_simple(i) for i in init)
            tail = ", ".join(_simple(i) for i in step)
            middle = _expr(cond) if cond is not None else ""
            return f"{pad}for ({head}; {middle}; {tail}) {_block(body, depth)}"
        case n.Break():
            return pad + "break;"
        case n.Continue():
            return pad + "continue;"
        case n.Return(value=value):
            return pad + ("return;" if value is None else f"return {_expr(value)};")
        case n.FuncDef(name=name, params=params, body=body, returns_value=rv):
            args = ", ".join(f"int {p}" for p in params)
            return f"{pad}{'int' if rv else 'void'} {name}({args}) {_block(body, depth)}"
    raise AssertionError(s)
