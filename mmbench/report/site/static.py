"""The page's stylesheet and script, inlined so the page is one self-contained file plus its images."""

CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1b1f24; }
header, main, footer { max-width: 1200px; margin: 0 auto; padding: 0 1.2rem; }
header { border-bottom: 1px solid #d0d7de; padding-bottom: .6rem; }
nav a { margin-right: 1rem; display: inline-block; }
nav a[aria-current] { font-weight: 600; color: #1b1f24; text-decoration: none; }
.summary { font-size: 16px; background: #f6f8fa; border-left: 4px solid #0969da; padding: .1rem 1rem;
  margin: .6rem 0 1rem; }
.links { columns: 2 14rem; padding-left: 1.2rem; }
h1 { margin-bottom: .2rem; }
h2 { border-bottom: 1px solid #eaeef2; padding-bottom: .2rem; margin-top: 2.2rem; }
table { border-collapse: collapse; margin: .6rem 0 1.4rem; font-size: 13px; display: block; overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: 3px 7px; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { background: #f6f8fa; cursor: pointer; user-select: none; position: sticky; top: 0; }
th[aria-sort="ascending"]::after { content: " \\25B2"; font-size: 9px; }
th[aria-sort="descending"]::after { content: " \\25BC"; font-size: 9px; }
tr:nth-child(even) td { background: #fafbfc; }
section .figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 520px), 1fr));
  gap: 0 1.2rem; }
figure { margin: .5rem 0 1.2rem; min-width: 0; }
.plot { overflow-x: auto; }
.plot img { width: 100%; height: auto; display: block; border: 1px solid #eaeef2; }
figcaption { font-size: 13px; color: #57606a; max-width: 900px; }
.meta { font-size: 13px; color: #57606a; }
.missing { font-size: 13px; color: #9a6700; }
@media (max-width: 600px) { body { font-size: 14px; } h1 { font-size: 1.45rem; } h2 { font-size: 1.2rem; }
  header p { margin: .3rem 0; } }
code { background: #f6f8fa; padding: 0 3px; border-radius: 3px; }
"""

# Click a header to sort by that column (again to reverse). Cells sort by the first number they
# hold ("89.9 ± 0.5 (3)" -> 89.9, "1.24x" -> 1.24); cells without a number sort as text, after numbers.
SORT_JS = """
(function () {
  function key(cell) {
    var text = cell.textContent.trim();
    var m = text.match(/-?\\d+(?:\\.\\d+)?(?:e[-+]?\\d+)?/i);
    return m ? {num: parseFloat(m[0]), text: text} : {num: null, text: text};
  }
  function compare(a, b) {
    if (a.num !== null && b.num !== null) return a.num - b.num;
    if (a.num !== null) return -1;
    if (b.num !== null) return 1;
    return a.text.localeCompare(b.text);
  }
  document.querySelectorAll("table").forEach(function (table) {
    var head = table.tHead;
    var body = table.tBodies[0];
    if (!head || !body) return;
    Array.prototype.forEach.call(head.rows[0].cells, function (th, col) {
      th.title = "sort by this column";
      th.addEventListener("click", function () {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(head.rows[0].cells, function (o) { o.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r1, r2) {
          var c = compare(key(r1.cells[col]), key(r2.cells[col]));
          return ascending ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();
"""
