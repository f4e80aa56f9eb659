"""Renders the boing Helm chart without Helm: the subset of Go templates the chart uses.

Supported (anything else is an error, so the chart cannot drift outside what is validated):
  {{ X }}, {{- X }}, {{ X -}}        with whitespace trimming as in text/template
  X = .Values.a.b | .Release.Name | .Release.Namespace | .Chart.Name|Version|AppVersion
      | $var | "string literal" | number,   optionally piped through
      quote | toYaml | nindent N | indent N | default V
  {{ if X }} ... {{ else }} ... {{ end }}   (Go truthiness: false, 0, "", empty map/list, nil)
  {{ range $k, $v := X }} ... {{ end }}    (maps in sorted key order, lists by index)
  {{/* comment */}}
"""
import re

import yaml

ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


class TemplateError(Exception):
    pass


def _truthy(v):
    return not (v is None or v is False or v == 0 or v == "" or v == {} or v == [])


def _to_yaml(v):
    if v is None:
        return "null"
    text = yaml.safe_dump(v, default_flow_style=False, sort_keys=True).rstrip("\n")
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    return text


def _go_string(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "<no value>"
    if isinstance(v, (dict, list)):
        raise TemplateError("cannot print a map or list without toYaml: %r" % (v,))
    return str(v)


def _tokens(text):
    """Splits text into ('text', s) and ('action', body) with trimming applied."""
    out = []
    pos = 0
    for m in ACTION.finditer(text):
        chunk = text[pos:m.start()]
        if m.group(1) == "-":
            chunk = chunk.rstrip(" \t\r\n")
        out.append(["text", chunk])
        out.append(["action", m.group(2), m.group(3) == "-"])
        pos = m.end()
    out.append(["text", text[pos:]])
    # Right trim: the text after an action ending in "-}}" loses its leading whitespace.
    for i, t in enumerate(out):
        if t[0] == "action" and t[2] and i + 1 < len(out):
            out[i + 1][1] = out[i + 1][1].lstrip(" \t\r\n")
    return out


def _parse(tokens):
    """Builds a tree: list of nodes ('text', s) | ('expr', e) | ('if', e, then, else) |
    ('range', k, v, e, body)."""
    pos = 0

    def block(stop):
        nonlocal pos
        nodes = []
        while pos < len(tokens):
            t = tokens[pos]
            pos += 1
            if t[0] == "text":
                if t[1]:
                    nodes.append(("text", t[1]))
                continue
            body = t[1]
            if body.startswith("/*"):
                if not body.endswith("*/"):
                    raise TemplateError("unterminated comment")
                continue
            word = body.split(None, 1)[0] if body else ""
            if word in ("end", "else"):
                if word not in stop:
                    raise TemplateError("unexpected {{ %s }}" % word)
                return nodes, word
            if word == "if":
                cond = body[2:].strip()
                then, how = block(("end", "else"))
                other = []
                if how == "else":
                    other, how = block(("end",))
                nodes.append(("if", cond, then, other))
            elif word == "range":
                m = re.fullmatch(r"range\s+\$(\w+)\s*,\s*\$(\w+)\s*:=\s*(.+)", body)
                if not m:
                    raise TemplateError("only 'range $k, $v := X' is supported: " + body)
                inner, how = block(("end",))
                nodes.append(("range", m.group(1), m.group(2), m.group(3), inner))
            elif word in ("define", "template", "include", "with", "block", "tpl"):
                raise TemplateError("unsupported action: " + body)
            else:
                nodes.append(("expr", body))
        if stop:
            raise TemplateError("missing {{ end }}")
        return nodes, None

    nodes, _ = block(())
    return nodes


def _lookup(path, ctx, scope):
    if path.startswith("$"):
        name = path[1:]
        if name not in scope:
            raise TemplateError("undefined variable $" + name)
        return scope[name]
    if not path.startswith("."):
        raise TemplateError("unsupported term: " + path)
    cur = ctx
    for part in path[1:].split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, dict):
            return None  # Helm: a missing value is nil
        else:
            raise TemplateError("cannot index %r with %s" % (cur, part))
    return cur


def _term(term, ctx, scope):
    term = term.strip()
    if term.startswith('"') and term.endswith('"'):
        return term[1:-1]
    if re.fullmatch(r"-?\d+", term):
        return int(term)
    if term in ("true", "false"):
        return term == "true"
    return _lookup(term, ctx, scope)


def _eval(expr, ctx, scope):
    stages = [s.strip() for s in expr.split("|")]
    first = stages[0].split()
    if first[0] in ("toYaml", "quote") and len(first) == 2:
        value = _apply(first[0], [], _term(first[1], ctx, scope))
    elif len(first) == 1:
        value = _term(first[0], ctx, scope)
    else:
        raise TemplateError("unsupported expression: " + expr)
    for stage in stages[1:]:
        words = stage.split()
        value = _apply(words[0], [_term(w, ctx, scope) for w in words[1:]], value)
    return value


def _apply(fn, args, value):
    if fn == "quote":
        return '"' + _go_string(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if fn == "toYaml":
        return _to_yaml(value)
    if fn in ("nindent", "indent"):
        pad = " " * int(args[0])
        text = "\n".join(pad + line if line else line for line in _go_string(value).split("\n"))
        return ("\n" if fn == "nindent" else "") + text
    if fn == "default":
        return value if _truthy(value) else args[0]
    raise TemplateError("unsupported function: " + fn)


def _render(nodes, ctx, scope, out):
    for n in nodes:
        if n[0] == "text":
            out.append(n[1])
        elif n[0] == "expr":
            out.append(_go_string(_eval(n[1], ctx, scope)))
        elif n[0] == "if":
            _render(n[2] if _truthy(_eval(n[1], ctx, scope)) else n[3], ctx, scope, out)
        elif n[0] == "range":
            coll = _eval(n[3], ctx, scope)
            items = sorted(coll.items()) if isinstance(coll, dict) else enumerate(coll or [])
            for k, v in items:
                _render(n[4], ctx, dict(scope, **{n[1]: k, n[2]: v}), out)


def deep_merge(base, override):
    """Helm's coalescing of user values onto the chart's: maps merge, a null deletes the key."""
    out = dict(base)
    for k, v in override.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def render_chart(chart_dir, release="boing", namespace="boing", values_override=None):
    """Returns {template file name: rendered text}."""
    import os

    with open(os.path.join(chart_dir, "Chart.yaml")) as f:
        chart = yaml.safe_load(f)
    with open(os.path.join(chart_dir, "values.yaml")) as f:
        values = yaml.safe_load(f)
    values = deep_merge(values, values_override or {})
    ctx = {
        "Values": values,
        "Release": {"Name": release, "Namespace": namespace},
        "Chart": {"Name": chart["name"], "Version": chart["version"],
                  "AppVersion": chart.get("appVersion", "")},
    }
    out = {}
    tdir = os.path.join(chart_dir, "templates")
    for name in sorted(os.listdir(tdir)):
        if not name.endswith((".yaml", ".yml", ".tpl")):
            continue
        with open(os.path.join(tdir, name)) as f:
            text = f.read()
        parts = []
        _render(_parse(_tokens(text)), ctx, {}, parts)
        out[name] = "".join(parts)
    return out
