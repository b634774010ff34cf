"""The report page's inline style sheet and script (the page loads nothing else).

The script renders the track cards from the page's inline JSON (``<script id="cards">``, see
:mod:`cctv_sr.report.html`), one page of :data:`PAGE_SIZE` cards at a time, so a run of
thousands of tracks stays light. It builds every element with ``textContent`` and attribute
setters, never ``innerHTML``, so no string from the files is parsed as markup.
"""

from __future__ import annotations

PAGE_SIZE = 48

CSS = """
:root{--bg:#10141b;--panel:#171c25;--panel2:#1e2430;--line:#2b3342;--text:#e3e8ef;
--dim:#9aa5b5;--acc:#6ea8fe;--ok:#3ccf91;--warn:#f0b848;--bad:#f0616d;
font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--text);font-size:14px;line-height:1.45}
main{max-width:1500px;margin:0 auto;padding:18px 22px 60px}
h1{font-size:22px;margin:0 0 2px}h2{font-size:16px;margin:26px 0 10px;color:var(--text)}
h3{font-size:14px;margin:0}
.sub{color:var(--dim);font-size:12.5px}
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;
word-break:break-all}
.notice{border:1px solid #6b5520;background:#2a2314;color:#f3dfae;border-radius:8px;
padding:10px 14px;margin:14px 0}
.status{border-radius:8px;padding:10px 14px;margin:10px 0;border:1px solid var(--line);
background:var(--panel)}
.status b{letter-spacing:.04em}
.status.complete{border-color:#24694f;background:#132a22}
.status.partial{border-color:#7a5c1c;background:#2b2412}
.status.failed{border-color:#7d2b33;background:#2d1519}
.issues{margin:6px 0 0;padding-left:20px;color:var(--warn)}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(140px,1fr));gap:10px;
margin:12px 0}
.tile{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:9px 12px}
.tile .v{font-size:20px;font-weight:600}.tile .k{color:var(--dim);font-size:12px}
.panels{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:14px}
.panel{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:12px 14px;
overflow:auto}
.panel.wide{grid-column:1/-1}
.panel h2{margin:0 0 8px;font-size:14px;color:var(--dim);text-transform:uppercase;
letter-spacing:.06em}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:3px 8px 3px 0;vertical-align:top;border-bottom:1px solid var(--line)}
th{color:var(--dim);font-weight:500;font-size:12px}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
details summary{cursor:pointer;color:var(--acc);margin:6px 0}
.cam{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:10px 12px;
margin-bottom:12px}
.cam h3{margin-bottom:4px}
svg.timeline{display:block;background:var(--panel2);border-radius:6px}
svg .tick{stroke:#333c4c;stroke-width:1}svg .tlabel{fill:var(--dim);font-size:10px}
svg .event{stroke:var(--warn);stroke-width:1.5;stroke-dasharray:3 2}
svg .bar{cursor:pointer}svg .bar:hover{stroke:#fff;stroke-width:1}
svg .bar.off{opacity:.12}
.legend{display:flex;flex-wrap:wrap;gap:6px 14px;margin:8px 0 2px;color:var(--dim);font-size:12px}
.legend i{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;
vertical-align:-1px}
.controls{position:sticky;top:0;z-index:5;display:flex;flex-wrap:wrap;gap:10px 16px;
align-items:center;background:rgba(16,20,27,.96);border-bottom:1px solid var(--line);
padding:10px 0;margin:8px 0 14px}
.controls label{color:var(--dim);font-size:12.5px}
select,button{background:var(--panel2);color:var(--text);border:1px solid var(--line);
border-radius:6px;padding:5px 8px;font:inherit}
button{cursor:pointer}button:disabled{opacity:.4;cursor:default}
.count{color:var(--dim);margin-left:auto}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:14px}
.card{background:var(--panel);border:1px solid var(--line);border-radius:10px;padding:11px 12px;
border-top:3px solid var(--c,#7d8796);display:flex;flex-direction:column;gap:8px}
.card.flash{outline:2px solid var(--acc)}
.card header{display:flex;align-items:center;gap:8px}
.badge{margin-left:auto;font-size:11.5px;font-weight:600;padding:2px 8px;border-radius:10px;
background:var(--panel2);border:1px solid var(--line);white-space:nowrap;overflow:hidden;
text-overflow:ellipsis;max-width:60%}
.badge.matched{background:#173a2c;border-color:#2a7a57;color:#b9f3d7}
.badge.not_matchable{color:var(--dim)}
.meta{color:var(--dim);font-size:12px}
.crops{display:grid;grid-auto-flow:column;grid-template-rows:auto auto;gap:4px;
justify-content:start;overflow-x:auto;padding-bottom:2px}
.crops .lab{font-size:10.5px;color:var(--dim);align-self:center;writing-mode:vertical-rl;
transform:rotate(180deg)}
.crops img,.crops .miss{width:58px;height:58px;border-radius:4px;background:#0b0e13;
display:block;object-fit:contain}
.crops img.lr{image-rendering:pixelated}
.miss{border:1px dashed var(--line)}
.decision{font-size:13px}.decision b{color:var(--ok)}
.reason{color:var(--dim);font-size:12px}
img.sbs{width:100%;height:auto;border-radius:4px;background:#0b0e13;display:block}
table.cands td,table.cands th{font-size:12px;padding:2px 6px 2px 0}
table.cands tr.top td{color:var(--ok);font-weight:600}
.pager{display:flex;gap:8px;align-items:center;justify-content:center;margin:16px 0}
.empty{color:var(--dim);padding:30px;text-align:center}
"""

JS = """
(function(){
'use strict';
var PAGE = %(page)d;
var cards = JSON.parse(document.getElementById('cards').textContent);
var grid = document.getElementById('grid');
var fState = document.getElementById('f-state'), fPerson = document.getElementById('f-person');
var fCam = document.getElementById('f-cam'), fSort = document.getElementById('f-sort');
var count = document.getElementById('count');
var bars = Array.prototype.slice.call(document.querySelectorAll('svg .bar'));
var shown = [], page = 0;
function el(tag, cls, text){
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
function num(v, d){ return (v === null || v === undefined) ? '\\u2013' : v.toFixed(d); }
function clock(s){
  if (s === null || s === undefined) return '?';
  var m = Math.floor(s / 60), r = s - 60 * m;
  return m + ':' + (r < 10 ? '0' : '') + r.toFixed(1);
}
function img(src, alt, cls){
  if (!src) { var m = el('div', 'miss'); m.title = 'image missing'; return m; }
  var i = el('img', cls); i.loading = 'lazy'; i.decoding = 'async'; i.alt = alt; i.src = src;
  return i;
}
function passes(c){
  var st = fState.value;
  if (st === 'matched' && c.st !== 'matched') return false;
  if (st === 'unmatched' && c.st === 'matched') return false;
  if (st === 'no_match' && c.st !== 'no_match') return false;
  if (st === 'not_matchable' && c.st !== 'not_matchable') return false;
  if (fPerson.value && (!c.m || c.m.d !== fPerson.value)) return false;
  if (fCam && fCam.value && c.s !== fCam.value) return false;
  return true;
}
function sorter(){
  var by = fSort.value;
  if (by === 'score') return function(a, b){ return best(b) - best(a) || a.k - b.k; };
  if (by === 'faces') return function(a, b){ return b.n - a.n || a.k - b.k; };
  return function(a, b){ return a.k - b.k; };
}
function best(c){ return c.m && c.m.cs.length && c.m.cs[0][1] !== null ? c.m.cs[0][1] : -9; }
function badge(c){
  if (c.st === 'matched') return 'MATCH: ' + c.m.d;
  if (c.st === 'no_match') return 'NO MATCH';
  if (c.st === 'not_matchable') return 'NOT MATCHABLE';
  return 'not scored';
}
function card(c){
  var a = el('article', 'card st-' + c.st); a.id = 'card-' + c.k;
  a.setAttribute('data-k', c.k); a.setAttribute('data-state', c.st);
  a.style.setProperty('--c', c.col);
  var h = el('header'); h.appendChild(el('h3', null, c.s + ' \\u00b7 track ' + c.id));
  var b = el('span', 'badge ' + c.st, badge(c)); b.title = badge(c); h.appendChild(b);
  a.appendChild(h);
  var dur = (c.t0 !== null && c.t1 !== null) ? ' (' + (c.t1 - c.t0).toFixed(1) + ' s)' : '';
  a.appendChild(el('div', 'meta', clock(c.t0) + ' \\u2013 ' + clock(c.t1) + dur + ' \\u00b7 ' +
    c.n + ' faces \\u00b7 best quality ' + num(c.q, 2)));
  if (c.c.length) {
    var g = el('div', 'crops');
    g.appendChild(el('span', 'lab', 'LR'));
    g.appendChild(el('span', 'lab', 'SR'));
    c.c.forEach(function(x){
      g.appendChild(img(x[1], 'LR crop ' + x[0], 'lr'));
      g.appendChild(img(x[2], 'enhanced crop ' + x[0] + ' (aid only)', 'sr'));
    });
    a.appendChild(g);
  }
  if (c.m) a.appendChild(matchBox(c));
  return a;
}
function matchBox(c){
  var m = c.m, box = el('div', 'match'), p = el('div', 'decision');
  if (m.d) {
    p.appendChild(document.createTextNode('Match: '));
    p.appendChild(el('b', null, m.d));
    p.appendChild(document.createTextNode(
      ' (threshold ' + num(m.th, 3) + ', margin ' + num(m.mg, 3) + ')'));
  } else p.textContent = m.ok ? 'No match' : 'Not matchable';
  box.appendChild(p);
  if (m.r) box.appendChild(el('div', 'reason', m.r));
  var alt = ['LR alone: ' + (m.lo || 'none'), 'SR alone: ' + (m.so || 'none')];
  if (m.ho) alt.push('head alone: ' + m.ho);
  alt.push((m.ne === null ? '?' : m.ne) + ' faces embedded');
  box.appendChild(el('div', 'reason', alt.join(' \\u00b7 ')));
  if (m.sbs) box.appendChild(img(m.sbs, 'LR, enhanced and gallery photo side by side', 'sbs'));
  if (m.cs.length) {
    var t = el('table', 'cands'), hr = el('tr');
    ['candidate', 'combined', 'LR', 'SR', 'head'].forEach(function(x, i){
      hr.appendChild(el('th', i ? 'n' : null, x));
    });
    t.appendChild(hr);
    m.cs.forEach(function(x, i){
      var r = el('tr', (i === 0 && m.d) ? 'top' : null); r.appendChild(el('td', null, x[0]));
      for (var j = 1; j < 5; j++) r.appendChild(el('td', 'n', num(x[j], 3)));
      t.appendChild(r);
    });
    box.appendChild(t);
  }
  return box;
}
function render(){
  var pages = Math.max(1, Math.ceil(shown.length / PAGE));
  page = Math.min(page, pages - 1);
  grid.textContent = '';
  var part = shown.slice(page * PAGE, (page + 1) * PAGE);
  var frag = document.createDocumentFragment();
  part.forEach(function(c){ frag.appendChild(card(c)); });
  if (!part.length) frag.appendChild(el('div', 'empty', 'No track matches these filters.'));
  grid.appendChild(frag);
  count.textContent = shown.length + ' of ' + cards.length + ' tracks';
  document.querySelectorAll('.pager').forEach(function(pg){
    pg.querySelector('.pinfo').textContent = 'page ' + (page + 1) + ' of ' + pages;
    pg.querySelector('.prev').disabled = page === 0;
    pg.querySelector('.next').disabled = page >= pages - 1;
  });
}
function apply(){
  shown = cards.filter(passes).sort(sorter());
  var keep = {}; shown.forEach(function(c){ keep[c.k] = true; });
  bars.forEach(function(b){ b.classList.toggle('off', !keep[b.getAttribute('data-k')]); });
  page = 0; render();
}
function jump(k){
  var i = shown.findIndex(function(c){ return c.k === k; });
  if (i < 0) { fState.value = ''; fPerson.value = ''; if (fCam) fCam.value = ''; apply();
    i = shown.findIndex(function(c){ return c.k === k; }); }
  if (i < 0) return;
  page = Math.floor(i / PAGE); render();
  var a = document.getElementById('card-' + k);
  if (a) { a.scrollIntoView({block: 'center'}); a.classList.add('flash');
    setTimeout(function(){ a.classList.remove('flash'); }, 1600); }
}
function on(sel, ev, fn){
  document.querySelectorAll(sel).forEach(function(e){ e.addEventListener(ev, fn); });
}
[fState, fPerson, fCam, fSort].forEach(function(s){ if (s) s.addEventListener('change', apply); });
on('.pager .prev', 'click', function(){ page--; render(); });
on('.pager .next', 'click', function(){ page++; render(); });
bars.forEach(function(b){
  b.addEventListener('click', function(){ jump(Number(b.getAttribute('data-k'))); });
});
apply();
})();
"""


def script() -> str:
    """The page's script with its page size filled in."""
    return JS % {"page": PAGE_SIZE}
