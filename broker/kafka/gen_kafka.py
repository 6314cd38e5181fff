#!/usr/bin/env python3
"""gen_kafka: turn broker/kafka/schema/*.schema into the C message codec.

Usage: gen_kafka.py --outdir DIR SCHEMA...

Writes, into DIR:
  kafka_msgs.h       one request and one response struct per API, with
                     init/decode/encode functions and the API table
  kafka_msgs.c
  kafka_msgs_test.h  test helpers: fill a struct with pseudo-random values that
                     are valid at a version, and compare two structs field by
                     field at a version (unit tests and the fuzz target)
  kafka_msgs_test.c

The schema format is described in docs/protocol-codec.md. Python 3 standard
library only; meson runs this at build time and the outputs are never committed.
"""

import argparse
import os
import re
import sys

PRIMS = {
    # name: (C type, wire size, suffix of the kafka_dec_* / kafka_enc_* primitive)
    'int8': ('int8_t', 1, 'i8'),
    'int16': ('int16_t', 2, 'i16'),
    'int32': ('int32_t', 4, 'i32'),
    'int64': ('int64_t', 8, 'i64'),
    'uint16': ('uint16_t', 2, 'u16'),
    'uint32': ('uint32_t', 4, 'u32'),
    'bool': ('bool', 1, 'bool'),
    'float64': ('double', 8, 'f64'),
}
SLICES = ('string', 'bytes', 'records')
INT_LIMITS = {
    'int8': (-2**7, 2**7 - 1), 'int16': (-2**15, 2**15 - 1),
    'int32': (-2**31, 2**31 - 1), 'int64': (-2**63, 2**63 - 1),
    'uint16': (0, 2**16 - 1), 'uint32': (0, 2**32 - 1),
}


class SchemaError(Exception):
    pass


def snake(name):
    return re.sub(r'(?<=[a-z0-9])([A-Z])', r'_\1', name).lower()


def parse_range(text, where):
    m = re.fullmatch(r'(\d+)(\+|-(\d+))?', text)
    if not m:
        raise SchemaError('%s: bad version range %r' % (where, text))
    lo = int(m.group(1))
    if m.group(2) == '+':
        return (lo, None)
    if m.group(3) is not None:
        hi = int(m.group(3))
        if hi < lo:
            raise SchemaError('%s: empty version range %r' % (where, text))
        return (lo, hi)
    return (lo, lo)


def intersect(a, b):
    """Intersection of two (lo, hi|None) ranges, or None if empty."""
    if a is None or b is None:
        return None
    lo = max(a[0], b[0])
    his = [h for h in (a[1], b[1]) if h is not None]
    hi = min(his) if his else None
    if hi is not None and hi < lo:
        return None
    return (lo, hi)


class Struct:
    def __init__(self, cname, versions):
        self.cname = cname          # full C struct name
        self.versions = versions    # (lo, hi) clipped to the API's range
        self.fields = []
        self.tagged_use = False     # used as the type of a tagged field
        self.need_minsz = False     # its least wire size bounds an array count


class Field:
    def __init__(self, name, where):
        self.name = name
        self.where = where
        self.kind = None       # 'prim' 'slice' 'uuid' 'struct' 'array'
        self.type = None       # prim name / slice name / 'uuid'
        self.elem = None       # for arrays: ('prim', name) ('slice', 'string') ('uuid',) ('struct', Struct)
        self.struct = None     # for {}struct
        self.versions = None   # effective, clipped to the API and the parent
        self.nullable = None   # effective range within versions, or None
        self.tag = None
        self.default = None    # text from the schema, or None


class Api:
    def __init__(self, name, key, lo, hi, flex, where):
        self.name = name
        self.snake = snake(name)
        self.key = key
        self.lo = lo
        self.hi = hi
        self.flex = flex       # first flexible version or None
        self.where = where
        self.request = None    # root Struct
        self.response = None
        self.structs = {'request': [], 'response': []}   # in definition order (children first)
        self.struct_names = {'request': set(), 'response': set()}


def parse_default(field, text):
    f = field
    if text is None:
        return
    if f.kind == 'prim':
        if f.type == 'bool':
            if text not in ('true', 'false'):
                raise SchemaError('%s: bool default must be true/false' % f.where)
        elif f.type == 'float64':
            float(text)
        else:
            try:
                v = int(text, 0)
            except ValueError:
                raise SchemaError('%s: bad integer default %r' % (f.where, text))
            lo, hi = INT_LIMITS[f.type]
            if not lo <= v <= hi:
                raise SchemaError('%s: default %r out of range' % (f.where, text))
    elif f.kind in ('slice', 'array'):
        if text not in ('null', '""'):
            raise SchemaError('%s: only null or "" defaults are supported here' % f.where)
        if text == 'null' and f.nullable is None:
            raise SchemaError('%s: default null on a field that is never nullable' % f.where)
    else:
        raise SchemaError('%s: no default allowed for this type' % f.where)


def parse_files(paths):
    apis = []
    for path in paths:
        with open(path, encoding='utf-8') as fh:
            lines = fh.read().split('\n')
        api = None
        section = None
        stack = []   # [(indent, Struct)]
        for lineno, raw in enumerate(lines, 1):
            where = '%s:%d' % (os.path.basename(path), lineno)
            line = raw.rstrip()
            if not line.strip() or line.lstrip().startswith('#'):
                continue
            if '\t' in line:
                raise SchemaError('%s: tabs are not allowed' % where)
            indent = len(line) - len(line.lstrip(' '))
            toks = line.split()
            if indent == 0:
                while stack:
                    finish_struct(api, section, stack.pop()[1])
                if toks[0] == 'api':
                    if len(toks) != 5:
                        raise SchemaError('%s: api <Name> <key> versions=.. flexible=..' % where)
                    attrs = dict(t.split('=', 1) for t in toks[3:] if '=' in t)
                    if set(attrs) != {'versions', 'flexible'}:
                        raise SchemaError('%s: api needs versions= and flexible=' % where)
                    lo, hi = parse_range(attrs['versions'], where)
                    if hi is None:
                        raise SchemaError('%s: api versions need an upper bound' % where)
                    flex = None if attrs['flexible'] == 'none' else int(attrs['flexible'])
                    api = Api(toks[1], int(toks[2]), lo, hi, flex, where)
                    apis.append(api)
                    section = None
                    continue
                if toks[0] in ('request', 'response') and len(toks) == 1:
                    if api is None:
                        raise SchemaError('%s: %s outside an api' % (where, toks[0]))
                    if getattr(api, toks[0]) is not None:
                        raise SchemaError('%s: second %s' % (where, toks[0]))
                    section = toks[0]
                    root = Struct('kafka_%s_%s' % (api.snake, section), (api.lo, api.hi))
                    setattr(api, section, root)
                    stack = [(0, root)]
                    continue
                raise SchemaError('%s: expected api/request/response' % where)
            if section is None:
                raise SchemaError('%s: field outside request/response' % where)
            if indent % 2:
                raise SchemaError('%s: indent by two spaces' % where)
            while stack and stack[-1][0] >= indent:
                finish_struct(api, section, stack.pop()[1])
            if not stack or indent != stack[-1][0] + 2:
                raise SchemaError('%s: unexpected indentation' % where)
            parent = stack[-1][1]
            field = parse_field(api, section, parent, toks, where)
            parent.fields.append(field)
            child = field.struct or (field.elem[1] if field.elem and field.elem[0] == 'struct'
                                     else None)
            if child is not None:
                # its fields are indented two more than this line
                stack.append((indent, child))
        while stack:
            finish_struct(api, section, stack.pop()[1])
    check(apis)
    return apis


def finish_struct(api, section, st):
    if st in api.structs[section]:
        return
    api.structs[section].append(st)


def parse_field(api, section, parent, toks, where):
    if len(toks) < 2:
        raise SchemaError('%s: field needs a name and a type' % where)
    f = Field(toks[0], where)
    if not re.fullmatch(r'[a-z][a-z0-9_]*', f.name):
        raise SchemaError('%s: field names are snake_case' % where)
    if any(x.name == f.name for x in parent.fields):
        raise SchemaError('%s: duplicate field %s' % (where, f.name))
    typ = toks[1]
    versions = (0, None)
    nullable = None
    for t in toks[2:]:
        if '=' not in t:
            versions = parse_range(t, where)
            continue
        k, v = t.split('=', 1)
        if k == 'nullable':
            nullable = parse_range(v, where)
        elif k == 'tag':
            f.tag = int(v)
        elif k == 'default':
            f.default = v
        else:
            raise SchemaError('%s: unknown attribute %s' % (where, k))
    f.versions = intersect(versions, parent.versions)
    if f.versions is None:
        raise SchemaError('%s: field %s exists in no version of its parent' % (where, f.name))
    f.nullable = intersect(nullable, f.versions) if nullable else None

    def new_struct(sname):
        if not re.fullmatch(r'[a-z][a-z0-9_]*', sname):
            raise SchemaError('%s: struct names are snake_case' % where)
        cname = 'kafka_%s_%s_%s' % (api.snake, section, sname)
        if sname in api.struct_names[section]:
            raise SchemaError('%s: struct name %s used twice' % (where, sname))
        api.struct_names[section].add(sname)
        return Struct(cname, f.versions)

    if typ.startswith('[]'):
        f.kind = 'array'
        et = typ[2:]
        if et in PRIMS:
            f.elem = ('prim', et)
        elif et in ('string', 'bytes'):
            f.elem = ('slice', et)
        elif et == 'uuid':
            f.elem = ('uuid', et)
        else:
            f.elem = ('struct', new_struct(et))
    elif typ.startswith('{}'):
        f.kind = 'struct'
        f.struct = new_struct(typ[2:])
        if f.nullable:
            raise SchemaError('%s: structs cannot be nullable' % where)
    elif typ in PRIMS:
        f.kind, f.type = 'prim', typ
    elif typ in SLICES:
        f.kind, f.type = 'slice', typ
    elif typ == 'uuid':
        f.kind, f.type = 'uuid', typ
    else:
        raise SchemaError('%s: unknown type %s' % (where, typ))
    if f.nullable and f.kind not in ('slice', 'array'):
        raise SchemaError('%s: only strings, bytes, records and arrays can be nullable' % where)
    if f.tag is not None:
        if api.flex is None or intersect(f.versions, (api.flex, None)) != f.versions:
            raise SchemaError('%s: tagged field outside the flexible versions' % where)
        if f.kind == 'slice' and f.type == 'records':
            raise SchemaError('%s: records cannot be tagged' % where)
        if f.kind == 'struct':
            f.struct.tagged_use = True
    parse_default(f, f.default)
    return f


def check(apis):
    keys = set()
    for api in apis:
        if api.key in keys:
            raise SchemaError('%s: api key %d defined twice' % (api.where, api.key))
        keys.add(api.key)
        if api.request is None or api.response is None:
            raise SchemaError('%s: %s needs a request and a response' % (api.where, api.name))
        for section in ('request', 'response'):
            for st in api.structs[section]:
                tags = [f.tag for f in st.fields if f.tag is not None]
                if len(tags) != len(set(tags)):
                    raise SchemaError('%s: duplicate tag in %s' % (api.where, st.cname))
                for f in st.fields:
                    if f.kind == 'array' and f.elem[0] == 'struct':
                        f.elem[1].need_minsz = True
            # parents come after children: walk backwards so a struct's need is
            # known before its own non-tagged struct fields are looked at
            for st in reversed(api.structs[section]):
                if st.need_minsz:
                    for f in st.fields:
                        if f.kind == 'struct' and f.tag is None:
                            f.struct.need_minsz = True


# ---- C generation helpers ------------------------------------------------------------------------

class Gen:
    def __init__(self, api):
        self.api = api

    def clip(self, rng):
        return intersect(rng, (self.api.lo, self.api.hi))

    def cond(self, rng, within):
        """C condition on `v` for rng, knowing v is already inside `within`.
        Returns 'true', 'false' or an expression."""
        r = intersect(rng, within)
        if r is None:
            return 'false'
        wlo, whi = within
        whi = self.api.hi if whi is None else whi
        lo, hi = r
        hi = self.api.hi if hi is None else hi
        parts = []
        if lo > wlo:
            parts.append('v >= %d' % lo)
        if hi < whi:
            parts.append('v <= %d' % hi)
        if not parts:
            return 'true'
        if len(parts) == 2 and lo == hi:
            return 'v == %d' % lo
        return ' && '.join(parts)

    def nullable_expr(self, f):
        if not f.nullable:
            return 'false'
        return self.cond(f.nullable, self.clip(f.versions))


def c_int_literal(typ, value):
    v = int(value, 0)
    if typ == 'int64':
        if v == -2**63:
            return 'INT64_MIN'
        return 'INT64_C(%d)' % v
    if typ == 'int32' and v == -2**31:
        return 'INT32_MIN'
    if typ == 'uint32':
        return '%du' % v
    return '%d' % v


def default_expr(f):
    """C expression for a primitive field's default value."""
    if f.type == 'bool':
        return 'true' if f.default == 'true' else 'false'
    if f.type == 'float64':
        return '%r' % float(f.default or 0)
    return c_int_literal(f.type, f.default or '0')


def slice_default_null(f):
    if f.default is not None:
        return f.default == 'null'
    # records default to null (no data), strings and bytes to empty
    return f.kind == 'slice' and f.type == 'records' and f.nullable is not None


def array_default_null(f):
    return f.default == 'null'


def elem_ctype(elem):
    k = elem[0]
    if k == 'prim':
        return PRIMS[elem[1]][0]
    if k == 'slice':
        return 'buf_slice'
    if k == 'uuid':
        return 'struct kafka_uuid'
    return 'struct %s' % elem[1].cname


def range_text(rng):
    lo, hi = rng
    if hi is None:
        return 'v%d+' % lo
    if lo == hi:
        return 'v%d' % lo
    return 'v%d-%d' % (lo, hi)


def version_text(g, rng):
    lo, hi = rng
    if hi is None or hi >= g.api.hi:
        return 'v%d+' % lo
    return range_text(rng)


def field_comment(g, f):
    bits = []
    if f.versions != (g.api.lo, g.api.hi):
        bits.append(version_text(g, f.versions))
    if f.nullable:
        bits.append('nullable ' + version_text(g, f.nullable))
    if f.tag is not None:
        bits.append('tag %d' % f.tag)
    if f.default is not None:
        bits.append('default %s' % f.default)
    return ('/* %s */' % ', '.join(bits)) if bits else ''


# ---- header --------------------------------------------------------------------------------------

def gen_struct_decl(g, st, out):
    out.append('struct %s {' % st.cname)
    if not st.fields:
        out.append('    char unused_; /* no fields in any version */')
    for f in st.fields:
        cm = field_comment(g, f)
        cm = ' ' + cm if cm else ''
        if f.kind == 'prim':
            out.append('    %s %s;%s' % (PRIMS[f.type][0], f.name, cm))
        elif f.kind == 'slice':
            out.append('    buf_slice %s;%s' % (f.name, cm))
        elif f.kind == 'uuid':
            out.append('    struct kafka_uuid %s;%s' % (f.name, cm))
        elif f.kind == 'struct':
            out.append('    struct %s %s;%s' % (f.struct.cname, f.name, cm))
        else:
            out.append('    int32_t n_%s; /* -1 = null */' % f.name if f.nullable else
                       '    int32_t n_%s;' % f.name)
            out.append('    %s *%s;%s' % (elem_ctype(f.elem), f.name, cm))
    out.append('};')
    out.append('')


def gen_header(apis):
    out = []
    out.append('/* kafka_msgs: generated by broker/kafka/gen_kafka.py from broker/kafka/schema/.')
    out.append(' * Do not edit; change the schema or the generator. */')
    out.append('#pragma once')
    out.append('')
    out.append('#include <stdbool.h>')
    out.append('#include <stdint.h>')
    out.append('')
    out.append('#include "broker/kafka/kafka_codec.h"')
    out.append('#include "common/buf.h"')
    out.append('')
    out.append('struct arena;')
    out.append('')
    out.append('enum kafka_api_key {')
    for api in sorted(apis, key=lambda a: a.key):
        out.append('    KAFKA_API_%s = %d,' % (api.snake.upper(), api.key))
    out.append('};')
    out.append('')
    for api in sorted(apis, key=lambda a: a.key):
        g = Gen(api)
        flex = 'none' if api.flex is None else 'v%d+' % api.flex
        out.append('/* ---- %s (key %d), v%d-%d, flexible %s %s */' %
                   (api.name, api.key, api.lo, api.hi, flex, '-' * max(0, 60 - len(api.name))))
        out.append('')
        out.append('#define KAFKA_%s_MIN_VERSION %d' % (api.snake.upper(), api.lo))
        out.append('#define KAFKA_%s_MAX_VERSION %d' % (api.snake.upper(), api.hi))
        out.append('')
        for section in ('request', 'response'):
            for st in api.structs[section]:
                gen_struct_decl(g, st, out)
        for section in ('request', 'response'):
            n = 'kafka_%s_%s' % (api.snake, section)
            out.append('void %s_init(struct %s *m);' % (n, n))
            out.append('int %s_decode(buf_reader *r, int16_t version, struct arena *arena,' % n)
            out.append('        struct %s *ret);' % n)
            if section == 'request':
                out.append('int %s_encode(buf_writer *w, int16_t version, const struct %s *m);'
                           % (n, n))
            else:
                out.append('int %s_encode(buf_writer *w, int16_t version, const struct %s *m,'
                           % (n, n))
                out.append('        const struct kafka_enc_hook *hook);')
        out.append('')
    return '\n'.join(out) + '\n'


# ---- codec ---------------------------------------------------------------------------------------

def min_size_expr(g, f):
    """Least wire size of field f (when present and not tagged), as C over v/flex."""
    if f.kind == 'prim':
        return str(PRIMS[f.type][1])
    if f.kind == 'slice':
        return '(flex ? 1 : %d)' % (2 if f.type == 'string' else 4)
    if f.kind == 'uuid':
        return '16'
    if f.kind == 'struct':
        return 'minsz_%s(v, flex)' % f.struct.cname
    return '(flex ? 1 : 4)'


def elem_min_size_expr(elem):
    k = elem[0]
    if k == 'prim':
        return str(PRIMS[elem[1]][1])
    if k == 'slice':
        return '(d->flexible ? 1 : %d)' % (2 if elem[1] == 'string' else 4)
    if k == 'uuid':
        return '16'
    return 'minsz_%s(v, d->flexible)' % elem[1].cname


def gen_init(g, st, out):
    out.append('static void init_%s(struct %s *m)' % (st.cname, st.cname))
    out.append('{')
    out.append('    memset(m, 0, sizeof(*m));')
    for f in st.fields:
        if f.kind == 'prim':
            d = default_expr(f)
            if d not in ('0', 'false', '0.0'):
                out.append('    m->%s = %s;' % (f.name, d))
        elif f.kind == 'slice':
            out.append('    m->%s = %s;' % (f.name, 'kafka_slice_null()' if slice_default_null(f)
                                            else 'kafka_slice_empty()'))
        elif f.kind == 'struct':
            out.append('    init_%s(&m->%s);' % (f.struct.cname, f.name))
        elif f.kind == 'array' and array_default_null(f):
            out.append('    m->n_%s = -1;' % f.name)
    out.append('}')
    out.append('')


def gen_minsz(g, st, out):
    out.append('static size_t minsz_%s(int16_t v, bool flex)' % st.cname)
    out.append('{')
    out.append('    size_t n = flex ? 1 : 0; /* the tag buffer */')
    for f in st.fields:
        if f.tag is not None:
            continue
        c = g.cond(f.versions, st.versions)
        e = min_size_expr(g, f)
        if c == 'true':
            out.append('    n += %s;' % e)
        elif c != 'false':
            out.append('    if (%s)' % c)
            out.append('        n += %s;' % e)
    out.append('    (void)v;')
    out.append('    return n;')
    out.append('}')
    out.append('')


def dec_value(g, f, lval, ind):
    """Statements decoding field f into lval (an lvalue expression)."""
    p = ' ' * ind
    nl = g.nullable_expr(f)
    if f.kind == 'prim':
        return [p + 'TRY(kafka_dec_%s(d, &%s));' % (PRIMS[f.type][2], lval)]
    if f.kind == 'slice':
        fn = 'kafka_dec_string' if f.type == 'string' else 'kafka_dec_bytes'
        return [p + 'TRY(%s(d, %s, &%s));' % (fn, nl, lval)]
    if f.kind == 'uuid':
        return [p + 'TRY(kafka_dec_uuid(d, &%s));' % lval]
    if f.kind == 'struct':
        return [p + 'TRY(dec_%s(d, &%s));' % (f.struct.cname, lval)]
    # array
    base = lval.rsplit('->', 1)
    cnt = '%s->n_%s' % (base[0], base[1])
    et = elem_ctype(f.elem)
    k = f.elem[0]
    if k == 'prim':
        one = 'TRY(kafka_dec_%s(d, &a[i]));' % PRIMS[f.elem[1]][2]
    elif k == 'slice':
        one = 'TRY(%s(d, false, &a[i]));' % ('kafka_dec_string' if f.elem[1] == 'string'
                                             else 'kafka_dec_bytes')
    elif k == 'uuid':
        one = 'TRY(kafka_dec_uuid(d, &a[i]));'
    else:
        one = 'TRY(dec_%s(d, &a[i]));' % f.elem[1].cname
    return [
        p + '{',
        p + '    int32_t n;',
        p + '    void *mem;',
        p + '    TRY(kafka_dec_array_len(d, %s, %s, &n));' % (nl, elem_min_size_expr(f.elem)),
        p + '    TRY(kafka_dec_alloc(d, n, sizeof(%s), _Alignof(%s), &mem));' % (et, et),
        p + '    %s *a = mem;' % et,
        p + '    for (int32_t i = 0; i < n; i++)',
        p + '        ' + one,
        p + '    %s = a;' % lval,
        p + '    %s = n;' % cnt,
        p + '}',
    ]


def enc_value(g, f, ref, ind):
    """Statements encoding field f whose value is the lvalue ref."""
    p = ' ' * ind
    nl = g.nullable_expr(f)
    if f.kind == 'prim':
        return [p + 'TRY(kafka_enc_%s(e, %s));' % (PRIMS[f.type][2], ref)]
    if f.kind == 'slice':
        if f.type == 'records':
            return [p + 'TRY(kafka_enc_records(e, %s, &%s));' % (nl, ref)]
        fn = 'kafka_enc_string' if f.type == 'string' else 'kafka_enc_bytes'
        return [p + 'TRY(%s(e, %s, %s));' % (fn, nl, ref)]
    if f.kind == 'uuid':
        return [p + 'TRY(kafka_enc_uuid(e, &%s));' % ref]
    if f.kind == 'struct':
        return [p + 'TRY(enc_%s(e, &%s));' % (f.struct.cname, ref)]
    base = ref.rsplit('->', 1)
    cnt = '%s->n_%s' % (base[0], base[1])
    k = f.elem[0]
    if k == 'prim':
        one = 'TRY(kafka_enc_%s(e, %s[i]));' % (PRIMS[f.elem[1]][2], ref)
    elif k == 'slice':
        one = 'TRY(%s(e, false, %s[i]));' % ('kafka_enc_string' if f.elem[1] == 'string'
                                             else 'kafka_enc_bytes', ref)
    elif k == 'uuid':
        one = 'TRY(kafka_enc_uuid(e, &%s[i]));' % ref
    else:
        one = 'TRY(enc_%s(e, &%s[i]));' % (f.elem[1].cname, ref)
    return [
        p + 'TRY(kafka_enc_array_len(e, %s, %s, %s));' % (nl, cnt, ref),
        p + 'for (int32_t i = 0; i < %s; i++)' % cnt,
        p + '    ' + one,
    ]


def isdef_expr(f, ref):
    if f.kind == 'prim':
        return '%s == %s' % (ref, default_expr(f))
    if f.kind == 'slice':
        return '%s.len == %s' % (ref, '-1' if slice_default_null(f) else '0')
    if f.kind == 'uuid':
        return 'kafka_uuid_is_zero(&%s)' % ref
    if f.kind == 'struct':
        return 'isdef_%s(&%s)' % (f.struct.cname, ref)
    base = ref.rsplit('->', 1)
    return '%s->n_%s == %s' % (base[0], base[1], '-1' if array_default_null(f) else '0')


def gen_isdef(g, st, out):
    out.append('static bool isdef_%s(const struct %s *m)' % (st.cname, st.cname))
    out.append('{')
    conds = [isdef_expr(f, 'm->%s' % f.name) for f in st.fields]
    out.append('    return %s;' % (' &&\n           '.join('(%s)' % c for c in conds) or 'true'))
    out.append('}')
    out.append('')


def gen_dec(g, st, out):
    tagged = [f for f in st.fields if f.tag is not None]
    if tagged:
        out.append('static int dectag_%s(struct kafka_dec *d, uint32_t tag, void *obj)'
                   % st.cname)
        out.append('{')
        out.append('    struct %s *m = obj;' % st.cname)
        out.append('    const int16_t v = d->version;')
        out.append('    int rc;')
        out.append('    (void)rc;')
        out.append('    switch (tag) {')
        for f in sorted(tagged, key=lambda x: x.tag):
            out.append('    case %d:' % f.tag)
            c = g.cond(f.versions, st.versions)
            if c != 'true':
                out.append('        if (!(%s))' % c)
                out.append('            return 1;')
            out.extend(dec_value(g, f, 'm->%s' % f.name, 8))
            out.append('        return 0;')
        out.append('    default:')
        out.append('        (void)v;')
        out.append('        return 1;')
        out.append('    }')
        out.append('}')
        out.append('')
    out.append('static int dec_%s(struct kafka_dec *d, struct %s *m)' % (st.cname, st.cname))
    out.append('{')
    out.append('    const int16_t v = d->version;')
    out.append('    int rc;')
    out.append('    init_%s(m);' % st.cname)
    for f in st.fields:
        if f.tag is not None:
            continue
        c = g.cond(f.versions, st.versions)
        if c == 'false':
            continue
        if c == 'true':
            out.extend(dec_value(g, f, 'm->%s' % f.name, 4))
        else:
            out.append('    if (%s) {' % c)
            out.extend(dec_value(g, f, 'm->%s' % f.name, 8))
            out.append('    }')
    out.append('    if (d->flexible)')
    out.append('        TRY(kafka_dec_tagged(d, %s, m));' %
               (('dectag_%s' % st.cname) if tagged else 'NULL'))
    out.append('    (void)v;')
    out.append('    (void)rc;')
    out.append('    return 0;')
    out.append('}')
    out.append('')


def gen_enc(g, st, out):
    tagged = sorted([f for f in st.fields if f.tag is not None], key=lambda x: x.tag)
    for f in tagged:
        out.append('static int enctag_%s_%d(struct kafka_enc *e, const struct %s *m)'
                   % (st.cname, f.tag, st.cname))
        out.append('{')
        out.append('    int rc;')
        out.extend(enc_value(g, f, 'm->%s' % f.name, 4))
        out.append('    (void)rc;')
        out.append('    return 0;')
        out.append('}')
        out.append('')
    out.append('static int enc_%s(struct kafka_enc *e, const struct %s *m)' % (st.cname, st.cname))
    out.append('{')
    out.append('    const int16_t v = e->version;')
    out.append('    int rc;')
    for f in st.fields:
        if f.tag is not None:
            continue
        c = g.cond(f.versions, st.versions)
        if c == 'false':
            continue
        if c == 'true':
            out.extend(enc_value(g, f, 'm->%s' % f.name, 4))
        else:
            out.append('    if (%s) {' % c)
            out.extend(enc_value(g, f, 'm->%s' % f.name, 8))
            out.append('    }')
    out.append('    if (e->flexible) {')
    if not tagged:
        out.append('        TRY(kafka_enc_uvarint(e, 0));')
    else:
        for f in tagged:
            c = g.cond(f.versions, st.versions)
            out.append('        const bool t%d = (%s) && !(%s);' %
                       (f.tag, c, isdef_expr(f, 'm->%s' % f.name)))
        out.append('        TRY(kafka_enc_uvarint(e, %s));' %
                   ' + '.join('(uint32_t)t%d' % f.tag for f in tagged))
        for f in tagged:
            out.append('        if (t%d) {' % f.tag)
            out.append('            struct kafka_enc_tag t;')
            out.append('            kafka_enc_tag_begin(e, &t);')
            out.append('            TRY(kafka_enc_tag_end(e, &t, %d, enctag_%s_%d(&t.e, m)));'
                       % (f.tag, st.cname, f.tag))
            out.append('        }')
    out.append('    }')
    out.append('    (void)v;')
    out.append('    (void)rc;')
    out.append('    return 0;')
    out.append('}')
    out.append('')


# ---- error codes of a response (for per-error request metrics) ------------------------------

def has_errors(st, seen=None):
    """Whether @st holds an `error_code` field, directly or in a nested struct."""
    for f in st.fields:
        if f.name == 'error_code' and f.kind == 'prim' and f.type == 'int16':
            return True
        if f.kind == 'struct' and has_errors(f.struct):
            return True
        if f.kind == 'array' and f.elem[0] == 'struct' and has_errors(f.elem[1]):
            return True
    return False


def gen_errs(g, st, out):
    """errs_<struct>: call fn for every error_code present at version v, as
    Kafka's AbstractResponse.errorCounts() counts them (each partition's,
    each resource's, and the top-level one)."""
    out.append('static void errs_%s(const struct %s *m, int16_t v, kafka_error_fn fn, void *opaque)'
               % (st.cname, st.cname))
    out.append('{')
    for f in st.fields:
        body = None
        if f.name == 'error_code' and f.kind == 'prim' and f.type == 'int16':
            body = ['fn(opaque, m->error_code);']
        elif f.kind == 'struct' and has_errors(f.struct):
            body = ['errs_%s(&m->%s, v, fn, opaque);' % (f.struct.cname, f.name)]
        elif f.kind == 'array' and f.elem[0] == 'struct' and has_errors(f.elem[1]):
            body = ['for (int32_t i = 0; i < m->n_%s; i++)' % f.name,
                    '    errs_%s(&m->%s[i], v, fn, opaque);' % (f.elem[1].cname, f.name)]
        if body is None:
            continue
        c = g.cond(f.versions, st.versions)
        if c == 'false':
            continue
        if c == 'true':
            out.extend('    ' + b for b in body)
        else:
            out.append('    if (%s) {' % c)
            out.extend('        ' + b for b in body)
            out.append('    }')
    out.append('    (void)v;')
    out.append('}')
    out.append('')


def gen_errs_dispatch(apis, out):
    out.append('int kafka_response_errors(int16_t api_key, int16_t version, const void *msg,')
    out.append('                          kafka_error_fn fn, void *opaque)')
    out.append('{')
    out.append('    switch (api_key) {')
    for api in sorted(apis, key=lambda a: a.key):
        out.append('    case %d:' % api.key)
        out.append('        if (version < %d || version > %d)' % (api.lo, api.hi))
        out.append('            return -ENOTSUP;')
        if has_errors(api.response):
            out.append('        errs_%s(msg, version, fn, opaque);' % api.response.cname)
        out.append('        return 0;')
    out.append('    default:')
    out.append('        (void)msg;')
    out.append('        (void)fn;')
    out.append('        (void)opaque;')
    out.append('        return -ENOTSUP;')
    out.append('    }')
    out.append('}')
    out.append('')


def gen_source(apis):
    out = []
    out.append('/* kafka_msgs: generated by broker/kafka/gen_kafka.py from broker/kafka/schema/.')
    out.append(' * Do not edit; change the schema or the generator. */')
    out.append('#include "broker/kafka/kafka_msgs.h"')
    out.append('')
    out.append('#include <errno.h>')
    out.append('#include <stdalign.h>')
    out.append('#include <string.h>')
    out.append('')
    out.append('#include "broker/kafka/kafka_prim.h"')
    out.append('')
    out.append('#define TRY(expr)                                                                  \\')
    out.append('    do {                                                                           \\')
    out.append('        if ((rc = (expr)) < 0)                                                     \\')
    out.append('            return rc;                                                             \\')
    out.append('    } while (0)')
    out.append('')
    for api in sorted(apis, key=lambda a: a.key):
        g = Gen(api)
        out.append('/* ---- %s ---- */' % api.name)
        out.append('')
        for section in ('request', 'response'):
            for st in api.structs[section]:
                gen_init(g, st, out)
                if st.need_minsz:
                    gen_minsz(g, st, out)
                if st.tagged_use:
                    gen_isdef(g, st, out)
                gen_dec(g, st, out)
                gen_enc(g, st, out)
                if section == 'response' and has_errors(st):
                    gen_errs(g, st, out)
        flex = api.flex if api.flex is not None else 32767
        for section in ('request', 'response'):
            n = 'kafka_%s_%s' % (api.snake, section)
            out.append('void %s_init(struct %s *m)' % (n, n))
            out.append('{')
            out.append('    init_%s(m);' % n)
            out.append('}')
            out.append('')
            out.append('int %s_decode(buf_reader *r, int16_t version, struct arena *arena,' % n)
            out.append('        struct %s *ret)' % n)
            out.append('{')
            out.append('    if (version < %d || version > %d)' % (api.lo, api.hi))
            out.append('        return -ENOTSUP;')
            out.append('    buf_reader copy = *r;')
            out.append('    struct kafka_dec d = {&copy, arena, version, version >= %d};' % flex)
            out.append('    struct %s m;' % n)
            out.append('    int rc = dec_%s(&d, &m);' % n)
            out.append('    if (rc < 0)')
            out.append('        return rc;')
            out.append('    *r = copy;')
            out.append('    *ret = m;')
            out.append('    return 0;')
            out.append('}')
            out.append('')
            if section == 'request':
                out.append('int %s_encode(buf_writer *w, int16_t version, const struct %s *m)'
                           % (n, n))
                hook = 'NULL'
            else:
                out.append('int %s_encode(buf_writer *w, int16_t version, const struct %s *m,'
                           % (n, n))
                out.append('        const struct kafka_enc_hook *hook)')
                hook = 'hook'
            out.append('{')
            out.append('    if (version < %d || version > %d)' % (api.lo, api.hi))
            out.append('        return -ENOTSUP;')
            out.append('    struct kafka_enc e = {w, %s, version, version >= %d};' % (hook, flex))
            out.append('    return enc_%s(&e, m);' % n)
            out.append('}')
            out.append('')
            # table adaptors
            out.append('static void tinit_%s(void *m)' % n)
            out.append('{')
            out.append('    init_%s(m);' % n)
            out.append('}')
            out.append('')
            out.append('static int tdec_%s(struct kafka_dec *d, void *m)' % n)
            out.append('{')
            out.append('    return dec_%s(d, m);' % n)
            out.append('}')
            out.append('')
            out.append('static int tenc_%s(struct kafka_enc *e, const void *m)' % n)
            out.append('{')
            out.append('    return enc_%s(e, m);' % n)
            out.append('}')
            out.append('')
    out.append('const struct kafka_api_info kafka_api_table[] = {')
    for api in sorted(apis, key=lambda a: a.key):
        q = 'kafka_%s_request' % api.snake
        s = 'kafka_%s_response' % api.snake
        out.append('    {')
        out.append('        .api_key = %d,' % api.key)
        out.append('        .name = "%s",' % api.name)
        out.append('        .min_version = %d,' % api.lo)
        out.append('        .max_version = %d,' % api.hi)
        out.append('        .first_flexible = %d,' % (api.flex if api.flex is not None else 32767))
        out.append('        .request_size = sizeof(struct %s),' % q)
        out.append('        .response_size = sizeof(struct %s),' % s)
        out.append('        .request_init = tinit_%s,' % q)
        out.append('        .response_init = tinit_%s,' % s)
        out.append('        .request_dec = tdec_%s,' % q)
        out.append('        .response_dec = tdec_%s,' % s)
        out.append('        .request_enc = tenc_%s,' % q)
        out.append('        .response_enc = tenc_%s,' % s)
        out.append('    },')
    out.append('};')
    out.append('const size_t kafka_api_table_len = sizeof(kafka_api_table) / sizeof(kafka_api_table[0]);')
    out.append('')
    gen_errs_dispatch(apis, out)
    return '\n'.join(out)


# ---- test helpers --------------------------------------------------------------------------------

def fill_value(g, f, lval, ind, tagged):
    p = ' ' * ind
    nl = g.nullable_expr(f)
    lines = []
    if f.kind == 'prim':
        t = f.type
        if t == 'bool':
            val = '(kafka_test_rand(rng) & 1) != 0'
        elif t == 'float64':
            val = '(double)(int32_t)kafka_test_rand(rng) / 8.0'
        else:
            val = '(%s)kafka_test_rand(rng)' % PRIMS[t][0]
        if tagged:
            lines.append(p + 'if (kafka_test_rand(rng) & 1)')
            lines.append(p + '    %s = %s;' % (lval, val))
        else:
            lines.append(p + '%s = %s;' % (lval, val))
        return lines
    if f.kind == 'slice':
        kind = 0 if f.type == 'string' else 1
        lines.append(p + '%s = kafka_test_slice(a, rng, %s, %d);' % (lval, nl, kind))
        return lines
    if f.kind == 'uuid':
        lines.append(p + 'kafka_test_uuid(rng, &%s);' % lval)
        return lines
    if f.kind == 'struct':
        if tagged:
            lines.append(p + 'if (kafka_test_rand(rng) & 1)')
            lines.append(p + '    fill_%s(&%s, v, a, rng);' % (f.struct.cname, lval))
        else:
            lines.append(p + 'fill_%s(&%s, v, a, rng);' % (f.struct.cname, lval))
        return lines
    base = lval.rsplit('->', 1)
    cnt = '%s->n_%s' % (base[0], base[1])
    et = elem_ctype(f.elem)
    k = f.elem[0]
    if k == 'prim':
        t = f.elem[1]
        one = 'arr[i] = (%s)kafka_test_rand(rng);' % PRIMS[t][0]
        if t == 'bool':
            one = 'arr[i] = (kafka_test_rand(rng) & 1) != 0;'
    elif k == 'slice':
        one = 'arr[i] = kafka_test_slice(a, rng, false, %d);' % (0 if f.elem[1] == 'string' else 1)
    elif k == 'uuid':
        one = 'kafka_test_uuid(rng, &arr[i]);'
    else:
        one = 'fill_%s(&arr[i], v, a, rng);' % f.elem[1].cname
    lines += [
        p + '{',
        p + '    int32_t n = kafka_test_count(rng, %s);' % nl,
        p + '    %s *arr = NULL;' % et,
        p + '    if (n > 0) {',
        p + '        arr = kafka_test_alloc(a, (size_t)n * sizeof(*arr));',
        p + '        for (int32_t i = 0; i < n; i++)',
        p + '            ' + one,
        p + '    }',
        p + '    %s = n;' % cnt,
        p + '    %s = arr;' % lval,
        p + '}',
    ]
    return lines


def eq_expr(f, x, y):
    """C boolean comparing field values x and y (lvalues)."""
    if f.kind == 'prim':
        if f.type == 'float64':
            return 'memcmp(&%s, &%s, sizeof(double)) == 0' % (x, y)
        return '%s == %s' % (x, y)
    if f.kind == 'slice':
        return 'kafka_slice_eq(%s, %s)' % (x, y)
    if f.kind == 'uuid':
        return 'memcmp(%s.b, %s.b, 16) == 0' % (x, y)
    if f.kind == 'struct':
        return 'eq_%s(&%s, &%s, v)' % (f.struct.cname, x, y)
    raise AssertionError


def elem_eq(elem, x, y):
    k = elem[0]
    if k == 'prim':
        return '%s == %s' % (x, y)
    if k == 'slice':
        return 'kafka_slice_eq(%s, %s)' % (x, y)
    if k == 'uuid':
        return 'memcmp(%s.b, %s.b, 16) == 0' % (x, y)
    return 'eq_%s(&%s, &%s, v)' % (elem[1].cname, x, y)


def gen_test_source(apis):
    out = []
    out.append('/* kafka_msgs_test: generated by broker/kafka/gen_kafka.py. Do not edit. */')
    out.append('#include "broker/kafka/kafka_msgs_test.h"')
    out.append('')
    out.append('#include <stdlib.h>')
    out.append('#include <string.h>')
    out.append('')
    out.append('#include "broker/kafka/kafka_prim.h"')
    out.append('#include "common/arena.h"')
    out.append('')
    out.append('static void *kafka_test_alloc(struct arena *a, size_t n)')
    out.append('{')
    out.append('    void *p = arena_zalloc(a, n, 0);')
    out.append('    if (!p)')
    out.append('        abort(); /* test arenas are uncapped */')
    out.append('    return p;')
    out.append('}')
    out.append('')
    out.append('static buf_slice kafka_test_slice(struct arena *a, uint64_t *rng, bool nullable, int bytes)')
    out.append('{')
    out.append('    uint32_t r = kafka_test_rand(rng);')
    out.append('    if (nullable && r % 4 == 0)')
    out.append('        return kafka_slice_null();')
    out.append('    int32_t len = (int32_t)((r >> 8) % 13);')
    out.append('    uint8_t *p = kafka_test_alloc(a, (size_t)len + 1);')
    out.append('    for (int32_t i = 0; i < len; i++) {')
    out.append('        uint32_t c = kafka_test_rand(rng);')
    out.append("        p[i] = bytes ? (uint8_t)c : (uint8_t)('a' + c % 26);")
    out.append('    }')
    out.append('    buf_slice s = {p, len};')
    out.append('    return s;')
    out.append('}')
    out.append('')
    out.append('static void kafka_test_uuid(uint64_t *rng, struct kafka_uuid *u)')
    out.append('{')
    out.append('    for (size_t i = 0; i < sizeof(u->b); i++)')
    out.append('        u->b[i] = (uint8_t)kafka_test_rand(rng);')
    out.append('}')
    out.append('')
    out.append('static int32_t kafka_test_count(uint64_t *rng, bool nullable)')
    out.append('{')
    out.append('    uint32_t r = kafka_test_rand(rng);')
    out.append('    if (nullable && r % 5 == 0)')
    out.append('        return -1;')
    out.append('    return (int32_t)((r >> 8) % 3);')
    out.append('}')
    out.append('')
    for api in sorted(apis, key=lambda a: a.key):
        g = Gen(api)
        for section in ('request', 'response'):
            for st in api.structs[section]:
                # fill
                out.append('static void fill_%s(struct %s *m, int16_t v, struct arena *a, '
                           'uint64_t *rng)' % (st.cname, st.cname))
                out.append('{')
                for f in st.fields:
                    c = g.cond(f.versions, st.versions)
                    if c == 'false':
                        continue
                    body = fill_value(g, f, 'm->%s' % f.name, 8 if c != 'true' else 4,
                                      f.tag is not None)
                    if c == 'true':
                        out.extend(body)
                    else:
                        out.append('    if (%s) {' % c)
                        out.extend(body)
                        out.append('    }')
                out.append('    (void)v;')
                out.append('    (void)a;')
                out.append('    (void)rng;')
                out.append('}')
                out.append('')
                # equal
                out.append('static bool eq_%s(const struct %s *x, const struct %s *y, int16_t v)'
                           % (st.cname, st.cname, st.cname))
                out.append('{')
                for f in st.fields:
                    c = g.cond(f.versions, st.versions)
                    if c == 'false':
                        continue
                    lines = []
                    if f.kind == 'array':
                        lines.append('if (x->n_%s != y->n_%s)' % (f.name, f.name))
                        lines.append('    return false;')
                        lines.append('for (int32_t i = 0; i < x->n_%s; i++)' % f.name)
                        lines.append('    if (!(%s))' % elem_eq(f.elem, 'x->%s[i]' % f.name,
                                                                'y->%s[i]' % f.name))
                        lines.append('        return false;')
                    else:
                        lines.append('if (!(%s))' % eq_expr(f, 'x->%s' % f.name,
                                                           'y->%s' % f.name))
                        lines.append('    return false;')
                    if c == 'true':
                        out.extend('    ' + l for l in lines)
                    else:
                        out.append('    if (%s) {' % c)
                        out.extend('        ' + l for l in lines)
                        out.append('    }')
                out.append('    (void)x;')
                out.append('    (void)y;')
                out.append('    (void)v;')
                out.append('    return true;')
                out.append('}')
                out.append('')
            n = 'kafka_%s_%s' % (api.snake, section)
            out.append('void %s_fill(struct %s *m, int16_t version, struct arena *a, uint64_t *rng)'
                       % (n, n))
            out.append('{')
            out.append('    %s_init(m);' % n)
            out.append('    fill_%s(m, version, a, rng);' % n)
            out.append('}')
            out.append('')
            out.append('bool %s_equal(const struct %s *x, const struct %s *y, int16_t version)'
                       % (n, n, n))
            out.append('{')
            out.append('    return eq_%s(x, y, version);' % n)
            out.append('}')
            out.append('')
            out.append('static void tfill_%s(void *m, int16_t version, struct arena *a, '
                       'uint64_t *rng)' % n)
            out.append('{')
            out.append('    %s_fill(m, version, a, rng);' % n)
            out.append('}')
            out.append('')
            out.append('static bool teq_%s(const void *x, const void *y, int16_t version)' % n)
            out.append('{')
            out.append('    return eq_%s(x, y, version);' % n)
            out.append('}')
            out.append('')
    out.append('const struct kafka_test_api kafka_test_table[] = {')
    for api in sorted(apis, key=lambda a: a.key):
        q = 'kafka_%s_request' % api.snake
        s = 'kafka_%s_response' % api.snake
        out.append('    {%d, tfill_%s, tfill_%s, teq_%s, teq_%s},' % (api.key, q, s, q, s))
    out.append('};')
    out.append('')
    out.append('const struct kafka_test_api *kafka_test_lookup(int16_t api_key)')
    out.append('{')
    out.append('    for (size_t i = 0; i < sizeof(kafka_test_table) / sizeof(kafka_test_table[0]); i++)')
    out.append('        if (kafka_test_table[i].api_key == api_key)')
    out.append('            return &kafka_test_table[i];')
    out.append('    return NULL;')
    out.append('}')
    out.append('')
    return '\n'.join(out)


def gen_test_header(apis):
    out = []
    out.append('/* kafka_msgs_test: generated by broker/kafka/gen_kafka.py. Do not edit.')
    out.append(' *')
    out.append(' * Test helpers for the generated codec. *_fill() sets every field that exists')
    out.append(' * at @version to a pseudo-random value that is valid there (nulls only where')
    out.append(' * the version allows them; tagged fields sometimes left at their default) and')
    out.append(' * leaves the others at their defaults; memory comes from @a, which must be')
    out.append(' * uncapped. *_equal() compares the fields that exist at @version. */')
    out.append('#pragma once')
    out.append('')
    out.append('#include <stdbool.h>')
    out.append('#include <stdint.h>')
    out.append('')
    out.append('#include "broker/kafka/kafka_msgs.h"')
    out.append('')
    out.append('struct arena;')
    out.append('')
    out.append('/* xorshift64*: reproducible, and good enough to spread values. */')
    out.append('static inline uint32_t kafka_test_rand(uint64_t *s)')
    out.append('{')
    out.append('    uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;')
    out.append('    x ^= x >> 12;')
    out.append('    x ^= x << 25;')
    out.append('    x ^= x >> 27;')
    out.append('    *s = x;')
    out.append('    return (uint32_t)((x * 0x2545f4914f6cdd1dull) >> 32);')
    out.append('}')
    out.append('')
    out.append('struct kafka_test_api {')
    out.append('    int16_t api_key;')
    out.append('    void (*request_fill)(void *m, int16_t version, struct arena *a, uint64_t *rng);')
    out.append('    void (*response_fill)(void *m, int16_t version, struct arena *a, uint64_t *rng);')
    out.append('    bool (*request_equal)(const void *x, const void *y, int16_t version);')
    out.append('    bool (*response_equal)(const void *x, const void *y, int16_t version);')
    out.append('};')
    out.append('')
    out.append('extern const struct kafka_test_api kafka_test_table[];')
    out.append('const struct kafka_test_api *kafka_test_lookup(int16_t api_key);')
    out.append('')
    for api in sorted(apis, key=lambda a: a.key):
        for section in ('request', 'response'):
            n = 'kafka_%s_%s' % (api.snake, section)
            out.append('void %s_fill(struct %s *m, int16_t version, struct arena *a, uint64_t *rng);'
                       % (n, n))
            out.append('bool %s_equal(const struct %s *x, const struct %s *y, int16_t version);'
                       % (n, n, n))
    out.append('')
    return '\n'.join(out)


def write_if_changed(path, text):
    try:
        with open(path, encoding='utf-8') as fh:
            if fh.read() == text:
                return
    except FileNotFoundError:
        pass
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as fh:
        fh.write(text)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--outdir', required=True)
    ap.add_argument('schemas', nargs='+')
    args = ap.parse_args()
    try:
        apis = parse_files(args.schemas)
    except SchemaError as e:
        print('gen_kafka: %s' % e, file=sys.stderr)
        return 1
    os.makedirs(args.outdir, exist_ok=True)
    write_if_changed(os.path.join(args.outdir, 'kafka_msgs.h'), gen_header(apis))
    write_if_changed(os.path.join(args.outdir, 'kafka_msgs.c'), gen_source(apis))
    write_if_changed(os.path.join(args.outdir, 'kafka_msgs_test.h'), gen_test_header(apis))
    write_if_changed(os.path.join(args.outdir, 'kafka_msgs_test.c'), gen_test_source(apis))
    return 0


if __name__ == '__main__':
    sys.exit(main())
