// The leaderboard page (benchmark/leaderboard/page.py inlines this file; the CSP allows only
// its hash). All data come from the JSON block and reach the page through textContent only.
(function () {
  "use strict";
  var payload = JSON.parse(document.getElementById("leaderboard-data").textContent);
  var columns = payload.columns;
  var tabs = document.getElementById("tabs");
  var panels = document.getElementById("panels");
  var state = {};

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  function link(label, url) {
    if (typeof url !== "string" || !/^https?:\/\//i.test(url)) return null;
    var a = el("a", label);
    a.href = url;
    a.rel = "noopener noreferrer nofollow";
    return a;
  }
  function fixed(v) {
    return v === null || v === undefined ? "" : Number(v).toFixed(4);
  }
  function cellValue(row, col) {
    return col.metric ? row.metrics[col.key] : row[col.key];
  }
  function compare(col, dir) {
    return function (a, b) {
      var x = cellValue(a, col), y = cellValue(b, col);
      if (x === null || x === undefined) return (y === null || y === undefined) ? a.rank - b.rank : 1;
      if (y === null || y === undefined) return -1;
      var c = col.numeric ? x - y : String(x).localeCompare(String(y), undefined, {sensitivity: "base"});
      return c !== 0 ? dir * c : a.rank - b.rank;
    };
  }
  function pair(dl, term, value, cls) {
    dl.appendChild(el("dt", term));
    var dd = el("dd", null, cls);
    if (value instanceof Node) dd.appendChild(value); else dd.textContent = value === null || value === undefined || value === "" ? "-" : String(value);
    dl.appendChild(dd);
  }
  function details(row) {
    var box = el("div", null, "entry");
    var left = el("div", null, "entry-main"), right = el("div", null, "entry-side");
    left.appendChild(el("h3", "Reproduce"));
    left.appendChild(el("pre", row.reproduce, "reproduce"));
    left.appendChild(el("h3", "Config " + row.config_hash));
    left.appendChild(el("pre", row.config, "config"));
    if (row.seeds.length) {
      left.appendChild(el("h3", "Seeds (" + row.seeds.length + "), each scored from its own lists"));
      var t = el("table", null, "seeds"), h = el("tr");
      ["seed", "NDCG@10", "HR@10", "Recall@10", "lists (sha256)", "code"].forEach(function (label) { h.appendChild(el("th", label)); });
      var head = el("thead"); head.appendChild(h); t.appendChild(head);
      var body = el("tbody");
      row.seeds.forEach(function (s) {
        var tr = el("tr");
        tr.appendChild(el("td", s.seed === null ? "-" : s.seed, "num"));
        tr.appendChild(el("td", fixed(s.ndcg), "num"));
        tr.appendChild(el("td", fixed(s.hr), "num"));
        tr.appendChild(el("td", fixed(s.recall), "num"));
        tr.appendChild(el("td", s.lists, "mono"));
        tr.appendChild(el("td", s.code || "-", "mono"));
        body.appendChild(tr);
      });
      t.appendChild(body);
      left.appendChild(t);
    }
    right.appendChild(el("h3", "Provenance"));
    var dl = el("dl");
    pair(dl, "entry id", row.id_full, "mono");
    pair(dl, "suite", row.suite_full, "mono");
    pair(dl, "config hash", row.config_hash, "mono");
    pair(dl, "data identity", row.data_identity, "mono");
    pair(dl, "preparation fingerprint", row.fingerprint_full, "mono");
    pair(dl, "preparation version", row.preparation_version);
    pair(dl, "date", row.date);
    pair(dl, "test users", row.n_test_users);
    pair(dl, "users missing", row.missing);
    var links = el("span");
    [link("code", row.code_url), link("paper", row.paper_url)].forEach(function (a) {
      if (a) { if (links.firstChild) links.appendChild(document.createTextNode(" ")); links.appendChild(a); }
    });
    pair(dl, "links", links.firstChild ? links : "-");
    right.appendChild(dl);
    box.appendChild(left);
    box.appendChild(right);
    return box;
  }
  function toggle(ds, row, open) {
    var s = state[ds.name];
    if (open === undefined) open = !s.open[row.id_full];
    if (open) s.open[row.id_full] = true; else delete s.open[row.id_full];
    var pairRows = s.rows[row.id_full];
    if (!pairRows) return;
    pairRows.detail.hidden = !open;
    pairRows.button.setAttribute("aria-expanded", open ? "true" : "false");
  }
  function fillBody(ds) {
    var s = state[ds.name];
    var rows = ds.rows.slice();
    if (s.col !== null) rows.sort(compare(columns[s.col], s.dir));
    var body = s.body;
    while (body.firstChild) body.removeChild(body.firstChild);
    s.rows = {};
    rows.forEach(function (row) {
      var tr = el("tr", null, "entry-row");
      tr.setAttribute("data-id", row.id_full);
      var button = null;
      columns.forEach(function (col) {
        var td;
        if (col.key === "links") {
          td = el("td", null, "links");
          [link("code", row.code_url), link("paper", row.paper_url)].forEach(function (a) {
            if (a) { if (td.firstChild) td.appendChild(document.createTextNode(" ")); td.appendChild(a); }
          });
        } else if (col.key === "config_hash") {
          td = el("td", null, "prov");
          button = el("button", row.config_hash || "config", "config-toggle");
          button.type = "button";
          button.title = "show the full config, the reproduce command and the provenance";
          button.setAttribute("aria-expanded", "false");
          button.addEventListener("click", function () { toggle(ds, row); });
          td.appendChild(button);
        } else if (col.metric) {
          td = el("td", fixed(row.metrics[col.key]), "num");
          var sd = row.std[col.key];
          if (row.n > 1 && sd !== null && sd !== undefined) td.appendChild(el("span", "\u00b1 " + Number(sd).toFixed(4), "std"));
        } else {
          var v = cellValue(row, col);
          td = el("td", v === null || v === undefined ? "" : v, (col.numeric ? "num" : "") + (col.prov ? " prov" : "") + (col.wrap ? " wrap" : ""));
          if (col.key === "suite" && row.suite_dirty) td.appendChild(el("span", "dirty", "dirty"));
        }
        td.setAttribute("data-key", col.key);
        tr.appendChild(td);
      });
      body.appendChild(tr);
      var detail = el("tr", null, "details");
      var cell = el("td");
      cell.colSpan = columns.length;
      cell.appendChild(details(row));
      detail.appendChild(cell);
      detail.hidden = true;
      body.appendChild(detail);
      if (row.reproduce) {  // a short line under every entry: the command that runs it again
        tr.className += " has-line";
        var line = el("tr", null, "reproduce-row"), lineCell = el("td", null, "reproduce-line");
        lineCell.colSpan = columns.length;
        lineCell.appendChild(el("span", "reproduce: ", "label"));
        lineCell.appendChild(el("code", row.reproduce));
        line.appendChild(lineCell);
        body.appendChild(line);
      }
      s.rows[row.id_full] = {detail: detail, button: button};
      if (s.open[row.id_full]) toggle(ds, row, true);
    });
    s.headers.forEach(function (th, i) {
      th.setAttribute("aria-sort", i === s.col ? (s.dir > 0 ? "ascending" : "descending") : "none");
    });
  }
  function sortBy(ds, i) {
    var s = state[ds.name], col = columns[i];
    if (s.col === i) s.dir = -s.dir;
    else { s.col = i; s.dir = col.metric && col.higher ? -1 : 1; }  // best first on a metric's first click
    fillBody(ds);
  }
  function select(name) {
    payload.datasets.forEach(function (ds) {
      var on = ds.name === name;
      state[ds.name].tab.setAttribute("aria-selected", on ? "true" : "false");
      state[ds.name].tab.tabIndex = on ? 0 : -1;
      state[ds.name].panel.hidden = !on;
    });
  }
  function byName(name) {
    return payload.datasets.filter(function (ds) { return ds.name === name; })[0] || null;
  }
  // #<dataset> opens its tab; #<dataset>/<id prefix> also opens that entry's details
  function fromHash() {
    var text = "";
    try { text = decodeURIComponent(window.location.hash.replace(/^#/, "")); } catch (e) { text = ""; }
    var parts = text.split("/"), ds = byName(parts[0]);
    if (!ds) return false;
    select(ds.name);
    if (parts[1]) {
      var row = ds.rows.filter(function (r) { return r.id_full.indexOf(parts[1]) === 0; })[0];
      if (row) { toggle(ds, row, true); state[ds.name].rows[row.id_full].detail.previousSibling.scrollIntoView({block: "center"}); }
    }
    return true;
  }
  function provenanceBlock(ds) {
    var box = el("details", null, "data");
    box.appendChild(el("summary", "Data: " + (ds.data ? "identity " + ds.data.identity.slice(0, 16) + "\u2026 (" + ds.data.fixed_by + ")" : "identity not fixed yet (the first entry fixes it)")));
    if (ds.data) {
      var dl = el("dl");
      pair(dl, "identity", ds.data.identity, "mono");
      ds.data.raw_files.forEach(function (f) { pair(dl, f[0] + " (sha256)", f[1], "mono"); });
      box.appendChild(dl);
    }
    return box;
  }
  payload.datasets.forEach(function (ds) {
    var tab = el("button", ds.name + " (" + ds.rows.length + ")");
    tab.type = "button";
    tab.setAttribute("role", "tab");
    tab.setAttribute("data-dataset", ds.name);
    tab.addEventListener("click", function () {
      select(ds.name);
      if (window.location.hash !== "#" + ds.name) window.location.hash = ds.name;  // a link to this tab
    });
    tabs.appendChild(tab);
    var panel = el("section");
    panel.setAttribute("role", "tabpanel");
    panel.setAttribute("data-dataset", ds.name);
    panel.id = "panel-" + ds.name;
    panel.appendChild(el("h2", ds.name));
    panel.appendChild(el("p", ds.description, "desc"));
    panel.appendChild(provenanceBlock(ds));
    state[ds.name] = {tab: tab, panel: panel, col: null, dir: 1, headers: [], open: {}, rows: {}};
    if (!ds.rows.length) {
      panel.appendChild(el("p", "No verified entries yet.", "empty"));
    } else {
      var table = el("table", null, "board"), head = el("thead"), hr = el("tr");
      columns.forEach(function (col, i) {
        var th = el("th", null, (col.numeric ? "num" : "") + (col.prov ? " prov" : ""));
        var at = col.metric ? col.label.indexOf("@") : -1;
        if (at > 0) {  // the cut-off on a line of its own keeps the metric columns narrow
          th.appendChild(document.createTextNode(col.label.slice(0, at)));
          th.appendChild(el("span", col.label.slice(at), "k"));
        } else {
          th.textContent = col.label;
        }
        th.setAttribute("data-key", col.key);
        if (col.title) th.title = col.title;
        if (col.key !== "links") {
          th.tabIndex = 0;
          th.title = (col.title ? col.title + "; " : "") + "click to sort";
          th.addEventListener("click", function () { sortBy(ds, i); });
          th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(ds, i); } });
        }
        state[ds.name].headers.push(th);
        hr.appendChild(th);
      });
      head.appendChild(hr);
      table.appendChild(head);
      state[ds.name].body = el("tbody");
      table.appendChild(state[ds.name].body);
      var wrap = el("div", null, "wrap");
      wrap.appendChild(table);
      panel.appendChild(wrap);
      fillBody(ds);
    }
    panels.appendChild(panel);
  });
  window.addEventListener("hashchange", fromHash);
  if (!fromHash()) {
    var first = payload.datasets.filter(function (ds) { return ds.rows.length; })[0] || payload.datasets[0];
    if (first) select(first.name);
  }
})();
