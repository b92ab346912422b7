# Prints where the bytes of a Go WebAssembly module go: its sections,
# and its code (function bodies) by module and by package, from the
# function names in its name section (go tool nm does not read wasm).
# Usage: python3 scripts/lib/wasmsize.py theus.wasm [packages to list]
import collections, re, sys
b = open(sys.argv[1], 'rb').read()
def leb(i):
    r = s = 0
    while True:
        x = b[i]; i += 1; r |= (x & 0x7f) << s; s += 7
        if x < 0x80: return r, i
def name(i):
    n, i = leb(i); return b[i:i+n].decode('utf-8', 'replace'), i + n
i = 8; sections = collections.Counter(); nimports = 0; bodies = []; names = {}
while i < len(b):
    sid = b[i]; size, j = leb(i + 1); end = j + size
    if sid == 0:
        nm, k = name(j); sections['custom ' + nm] += end - i
        if nm == 'name':
            while k < end:
                sub = b[k]; ssz, k2 = leb(k + 1)
                if sub == 1:
                    cnt, p = leb(k2)
                    for _ in range(cnt):
                        idx, p = leb(p); fn, p = name(p); names[idx] = fn
                k = k2 + ssz
    else:
        sections[{1:'type',2:'import',3:'function',5:'memory',6:'global',7:'export',10:'code',11:'data',4:'table',9:'element',8:'start',12:'datacount'}.get(sid, str(sid))] += end - i
        if sid == 2:
            cnt, p = leb(j)
            for _ in range(cnt):
                _, p = name(p); _, p = name(p); kind = b[p]; p += 1
                if kind == 0: _, p = leb(p); nimports += 1
                elif kind == 1: p += 1; fl, p = leb(p + 0) if False else (None, p); raise SystemExit('table import')
                elif kind == 2: fl = b[p]; p += 1; _, p = leb(p); p = leb(p)[1] if fl & 1 else p
                elif kind == 3: p += 2
        if sid == 10:
            cnt, p = leb(j)
            for _ in range(cnt):
                sz, p2 = leb(p); bodies.append(p2 + sz - p); p = p2 + sz
    i = end
def pkg(fn):
    fn = re.sub(r'^type[:_]\.(eq\.)?', '', fn)
    if fn.startswith('go_'): return '(anonymous types)'
    m = re.match(r'[a-z0-9-]+\.[a-z]+_', fn)  # a domain (github.com_...): the package ends at the next dot
    d = fn.find('.', m.end() if m else 0)
    return fn[:d] if d > 0 else fn
MODULES = [('github.com_theus_run_theus', 'theus (this module)'), ('github.com_expr_lang_expr', 'github.com/expr-lang/expr'),
           ('github.com_goccy_go_yaml', 'github.com/goccy/go-yaml'), ('github.com_tinylib_msgp', 'github.com/tinylib/msgp'),
           ('github.com_philhofer_fwd', 'github.com/philhofer/fwd'), ('github.com_cenkalti_backoff', 'github.com/cenkalti/backoff')]
def module(p):
    for pre, m in MODULES:
        if p.startswith(pre): return m
    return 'Go standard library and runtime' if not p.startswith(('github', '(')) else p
bypkg = collections.Counter(); bymod = collections.Counter()
for n, sz in enumerate(bodies):
    p = pkg(names.get(n + nimports, '?'))
    bypkg[p] += sz; bymod[module(p)] += sz
total = len(b)
print(f"{'section':<16} {'bytes':>10} {'share':>6}")
for s, sz in sections.most_common(4):
    print(f"{s:<16} {sz:>10} {100*sz/total:5.1f}%")
code = sum(bodies)
print(f"\ncode by module ({code} bytes of function bodies):")
for m, sz in bymod.most_common():
    print(f"{sz:>10} {100*sz/code:5.1f}%  {m}")
top = int(sys.argv[2]) if len(sys.argv) > 2 else 15
print(f"\ncode by package, top {top}:")
for p, sz in bypkg.most_common(top):
    print(f"{sz:>10} {100*sz/code:5.1f}%  {p}")
