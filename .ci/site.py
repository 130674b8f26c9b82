"""The docs site without Quarto: execute the notebooks (keeping small outputs), build the pages, check them in a browser.

    python .ci/site.py execute [NB ...]     run the notebooks as `nbdev_test` does and keep their small outputs
    python .ci/site.py build [--out _site]  nbdev's processed notebooks (`_proc/`, as `nbdev_docs` hands them to Quarto) -> HTML
    python .ci/site.py check [--site _site] [--shots DIR]   serve on 127.0.0.1, open every page in headless Chromium

Where Quarto exists, `nbdev_docs` builds the published site from the same `_proc/` notebooks. This build differs from
Quarto's: nbconvert's `lab` template and mistune render the pages (no Quarto callouts, cross-references or search),
a plain sidebar lists the pages in the order of `sidebar.yml`'s notebooks, and the Quarto-only markup nbdev writes
(`:::` fences, `{.class}` attributes) is dropped; the titles, text, code, show_doc API entries and figures are the same.
"""
import argparse, base64, concurrent.futures as cf, html, json, os, re, sys, threading, functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
MAX_LINES, MAX_BYTES = 40, 150_000       # what an output may be and stay in the notebook


def _palette_png(b64) -> str:
    "A figure at most 1,100 px wide as a 256-colour PNG: plots look the same at a third of the bytes or less."
    import io
    from PIL import Image
    raw = base64.b64decode(''.join(b64) if isinstance(b64, list) else b64)
    im = Image.open(io.BytesIO(raw)).convert('RGB')
    if im.width > 1100: im = im.resize((1100, round(im.height * 1100 / im.width)), Image.LANCZOS)   # wider than any page shows it
    buf = io.BytesIO(); im.quantize(256).save(buf, 'PNG', optimize=True)
    return base64.b64encode(min(raw, buf.getvalue(), key=len)).decode()


def _small(o) -> dict|None:
    "An output as the notebook keeps it, or None: figures and short tables and text stay; progress bars, errors and bulk go."
    t = o.get('output_type')
    if t == 'error' or (t == 'stream' and o.get('name') == 'stderr'): return None
    if t == 'stream':
        text = ''.join(o['text']) if isinstance(o['text'], list) else o['text']
        text = '\n'.join(l.rsplit('\r', 1)[-1] for l in text.split('\n'))      # what a terminal shows of \r-updated lines
        return None if not text.strip() or text.count('\n') > MAX_LINES else {**o, 'text': text}
    if 'image/png' in o.get('data', {}): o = {**o, 'data': {**o['data'], 'image/png': _palette_png(o['data']['image/png'])}}
    data = {k: v for k, v in o.get('data', {}).items()
            if len(''.join(v) if isinstance(v, list) else json.dumps(v)) <= MAX_BYTES
            and not (k == 'text/plain' and (''.join(v) if isinstance(v, list) else v).count('\n') > MAX_LINES)
            and k != 'application/vnd.jupyter.widget-view+json'}
    return {**o, 'data': data} if data else None


def execute_one(fn:str) -> tuple[str, bool, str]:
    "Run one notebook in this process as nbdev_test does (the test flags' cells skipped); write its small outputs back."
    from execnb.shell import CaptureShell
    from nbdev.process import NBProcessor
    from nbdev.config import get_config
    from fastcore.xtras import working_directory
    os.environ['IN_TEST'] = '1'
    fn = Path(fn); flags = set(get_config().tst_flags.split())
    nb = NBProcessor(fn).nb
    def skip(cell):
        if cell.cell_type != 'code': return True
        d = getattr(cell, 'directives_', {}) or {}
        return d.get('eval:', [''])[0].lower() == 'false' or bool(flags & d.keys())
    k = CaptureShell(fn)
    try:
        with working_directory(fn.parent): k.run_all(nb, exc_stop=True, preproc=skip)
    except Exception: return str(fn), False, k.prettytb(fname=fn)
    raw = json.loads(fn.read_text())
    assert len(raw['cells']) == len(nb.cells)
    for rc, c in zip(raw['cells'], nb.cells):
        if rc['cell_type'] != 'code': continue
        rc['outputs'] = [s for s in (_small(dict(o)) for o in (c.get('outputs') or [])) if s]
        for o in rc['outputs']: o.pop('execution_count', None) if o.get('output_type') != 'execute_result' else o.update(execution_count=None)
        rc['execution_count'] = None
    fn.write_text(json.dumps(raw, indent=1, ensure_ascii=False) + '\n')
    return str(fn), True, ''


def execute(nbs:list, workers:int=2) -> bool:
    "Each notebook in a process of its own (an IPython shell takes its process's `__main__`), `workers` at a time."
    import subprocess
    files = [str(Path(n).resolve()) for n in nbs] or sorted(str(p) for p in NBS.glob('*.ipynb'))
    run = lambda fn: (fn, subprocess.run([sys.executable, __file__, '_one', fn], capture_output=True, text=True))
    ok = True
    with cf.ThreadPoolExecutor(workers) as ex:
        for fn, r in ex.map(run, files):
            print(('executed ' if r.returncode == 0 else 'FAILED   ') + Path(fn).name, flush=True)
            if r.returncode: ok = False; sys.stderr.write(r.stdout[-3000:] + r.stderr[-5000:] + '\n')
    if ok: subprocess.run(['nbdev_clean'], cwd=ROOT, check=True)    # the repo's notebook format (outputs kept: clear_all = False)
    return ok


def _pages() -> list:
    "The notebooks in the sidebar's order: index first, then by file name."
    return sorted(NBS.glob('*.ipynb'), key=lambda p: (p.stem != 'index', p.name))


def _front(nb, key:str) -> str|None:
    "A field of the frontmatter nbdev writes (a raw cell) from the notebook's `# Title` and `> description`."
    for c in nb.cells:
        if c.cell_type == 'raw' and c.source.lstrip().startswith('---'):
            m = re.search(rf'^{key}:\s*(.+)$', c.source, re.M)
            if m: return m.group(1).strip().strip('"\'')

def _title(nb) -> str:
    t = _front(nb, 'title')
    if t: return t
    for c in nb.cells:
        m = re.search(r'^#\s+(.+)$', c.source, re.M) if c.cell_type == 'markdown' else None
        if m: return m.group(1).strip()
    return 'rosa'


def _quarto_free(md:str) -> str:
    md = re.sub(r'^:::.*$', '', md, flags=re.M)                 # Quarto's fenced divs
    return re.sub(r'(?<=[\)\]])\{[^{}\n]*\}|\{(\.[\w-]+\s*)+\}', '', md)   # and attribute lists ([source](...){style=...})


def build(out:Path) -> list:
    import nbformat
    from nbconvert import HTMLExporter
    from nbdev.serve import proc_nbs
    from nbdev.quarto import refresh_quarto_yml
    os.chdir(ROOT)
    proc = proc_nbs(str(NBS), n_workers=1, force=True)
    out.mkdir(parents=True, exist_ok=True)
    exp = HTMLExporter(template_name='lab', exclude_input_prompt=True, exclude_output_prompt=True)
    pages = []
    for src in _pages():
        nb = nbformat.read(proc/src.name, as_version=4)
        title = _title(nb)
        cells = []
        for c in nb.cells:
            if c.cell_type == 'raw': continue
            if c.cell_type == 'markdown': c.source = _quarto_free(c.source)
            if c.cell_type == 'code':
                d = [l for l in c.source.split('\n') if l.startswith('#|')]
                c.source = '\n'.join(l for l in c.source.split('\n') if not l.startswith('#|')).strip()
                if any(re.match(r'#\|\s*echo:\s*false', l) for l in d): c.metadata['transient'] = {'remove_source': True}; c.source = ''
                for o in c.get('outputs', []):
                    md = o.get('data', {}).get('text/markdown')
                    if md: o['data']['text/markdown'] = _quarto_free(''.join(md))
                if not c.source and not c.get('outputs'): continue
            cells.append(c)
        desc = _front(nb, 'description')
        head = f'# {title}' + (f'\n\n> {desc}' if desc else '')       # Quarto's title block
        nb.cells = [nbformat.v4.new_markdown_cell(head)] + cells
        body, _ = exp.from_notebook_node(nb, resources={'metadata': {'name': title}})
        pages.append((src.stem, title, body))
    css = (NBS/'styles.css').read_text() if (NBS/'styles.css').exists() else ''
    nav = ''.join(f'<li><a href="{"index" if s == "index" else s}.html">{html.escape(t)}</a></li>' for s, t, _ in pages)
    side = ('<nav id="rosa-sidebar" style="position:fixed;top:0;left:0;width:15rem;height:100%;overflow:auto;padding:1rem;'
            'border-right:1px solid #ddd;background:#fafafa;font-family:sans-serif;font-size:0.9rem">'
            f'<p><b><a href="index.html">rosa</a></b></p><ul style="padding-left:1rem">{nav}</ul></nav>')
    for stem, title, body in pages:
        body = re.sub(r'<title>.*?</title>', f'<title>{html.escape(title)} – rosa</title>', body, count=1, flags=re.S)
        body = body.replace('</head>', f'<style>{css}\nbody {{margin-left: 16rem !important}}</style></head>', 1)
        body = re.sub(r'(<body[^>]*>)', r'\1' + side.replace('\\', '\\\\'), body, count=1)
        (out/f'{stem}.html').write_text(body)
        print(f'built {stem}.html: {title}')
    return [(s, t) for s, t, _ in pages]


BAD_TEXT = ('Traceback (most recent call last)', 'NameError:', 'ModuleNotFoundError:', 'Error in notebook')


def check(site:Path, shots:Path) -> bool:
    from http.server import ThreadingHTTPServer, SimpleHTTPRequestHandler
    from playwright.sync_api import sync_playwright
    import tempfile
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *a): pass
    handler = functools.partial(Quiet, directory=str(site))
    srv = ThreadingHTTPServer(('127.0.0.1', 0), handler); port = srv.server_address[1]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    expected = json.loads((site/'pages.json').read_text())
    shots.mkdir(parents=True, exist_ok=True); ok = True
    args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
            '--disable-component-update', '--disable-sync']
    with sync_playwright() as p, tempfile.TemporaryDirectory() as udd:
        ctx = p.chromium.launch_persistent_context(udd, executable_path=os.environ.get('CHROMIUM', '/usr/bin/chromium'), args=args,
                                                   headless=True, viewport={'width': 1280, 'height': 900})
        page = ctx.new_page(); errors = []
        page.on('pageerror', lambda e: errors.append(str(e)))
        for stem, title in expected:
            errors.clear()
            resp = page.goto(f'http://127.0.0.1:{port}/{stem}.html', wait_until='load')
            page.wait_for_function('Array.from(document.images).every(i => i.complete)', timeout=20_000)
            imgs = page.evaluate('Array.from(document.images).map(i => [i.naturalWidth, i.naturalHeight, i.src.slice(0, 60)])')
            text = page.inner_text('body')
            probs = []
            if resp is None or resp.status != 200: probs.append(f'HTTP {resp and resp.status}')
            if page.title() != f'{title} – rosa': probs.append(f'title {page.title()!r}, expected {title!r}')
            if not page.query_selector('h1'): probs.append('no heading')
            probs += [f'image {s}... does not load' for w, h, s in imgs if not (w and h)]
            probs += [f'error text {b!r}' for b in BAD_TEXT if b in text]
            if page.query_selector('.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"], .output_error'): probs.append('an error output')
            probs += [f'script error {e}' for e in errors]
            page.screenshot(path=str(shots/f'{stem}.png'), full_page=True)
            print(f"{'ok  ' if not probs else 'FAIL'} {stem}.html  {title!r}  {len(imgs)} images" + ''.join(f'\n     {x}' for x in probs), flush=True)
            ok &= not probs
        ctx.close()
    srv.shutdown()
    return ok


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest='cmd', required=True)
    e = sub.add_parser('execute'); e.add_argument('nbs', nargs='*'); e.add_argument('--workers', type=int, default=2)
    o = sub.add_parser('_one'); o.add_argument('nb')
    b = sub.add_parser('build'); b.add_argument('--out', default=str(ROOT/'_site'))
    c = sub.add_parser('check'); c.add_argument('--site', default=str(ROOT/'_site')); c.add_argument('--shots', default=str(ROOT/'_site'/'_shots'))
    a = ap.parse_args()
    if a.cmd == 'execute': sys.exit(0 if execute(a.nbs, a.workers) else 1)
    if a.cmd == '_one':
        fn, good, err = execute_one(a.nb)
        if not good: sys.stderr.write(err); sys.exit(1)
    if a.cmd == 'build':
        out = Path(a.out); pages = build(out); (out/'pages.json').write_text(json.dumps(pages))
    if a.cmd == 'check': sys.exit(0 if check(Path(a.site), Path(a.shots)) else 1)
