// walship console: plain JavaScript, no library. Every request goes to the
// node that served this page; with --auth, each carries the credentials
// given at sign-in (HTTP Basic), kept in sessionStorage for this tab only.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);

  // el builds an element: el('td', {class: 'num'}, 'text', child…). Text is
  // always set as text, never parsed as HTML.
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const k of kids.flat()) {
      if (k === undefined || k === null) continue;
      e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return e;
  }

  // ---- credentials and requests ------------------------------------------

  const creds = {
    header: () => sessionStorage.getItem('walship.auth'),
    user: () => sessionStorage.getItem('walship.user'),
    set(user, password) {
      const bytes = new TextEncoder().encode(user + ':' + password);
      let bin = '';
      for (const b of bytes) bin += String.fromCharCode(b);
      sessionStorage.setItem('walship.auth', 'Basic ' + btoa(bin));
      sessionStorage.setItem('walship.user', user);
    },
    clear() {
      sessionStorage.removeItem('walship.auth');
      sessionStorage.removeItem('walship.user');
    },
  };

  // describe says what an error answer means, naming the permission a 403
  // says is missing.
  function describe(status, json, text) {
    const msg = ((json && typeof json.error === 'string' && json.error) || text || '').trim();
    if (status === 401) {
      return creds.header()
        ? '401 Unauthorized: the node refused the credentials of "' + creds.user() + '"; sign in again'
        : '401 Unauthorized: this node requires credentials; sign in';
    }
    if (status === 403) {
      const m = msg.match(/lacks the "([^"]+)" permission/);
      return m ? '403 Forbidden: missing permission "' + m[1] + '" (' + msg + ')' : '403 Forbidden: ' + msg;
    }
    return String(status) + (msg ? ': ' + msg : '');
  }

  // api sends one request to this node and returns {ok, status, json,
  // text, blob, headers, ms, error}; it never throws. A 401 opens the
  // sign-in form.
  async function api(method, path, body, opts = {}) {
    const headers = {};
    const auth = creds.header();
    if (auth) headers.Authorization = auth;
    if (body instanceof Blob) {
      headers['Content-Type'] = 'application/octet-stream';
    } else if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(body);
    }
    const t0 = performance.now();
    let resp;
    try {
      // credentials 'omit': the browser adds none of its own and shows no
      // login dialog of its own on a 401; the header above is ours.
      resp = await fetch(path, { method, headers, body, credentials: 'omit', cache: 'no-store' });
    } catch (e) {
      return { ok: false, status: 0, ms: performance.now() - t0, error: 'no answer from the node: ' + e.message };
    }
    const r = { ok: resp.ok, status: resp.status, headers: resp.headers };
    if (resp.ok && opts.blob) {
      r.blob = await resp.blob();
    } else {
      r.text = await resp.text();
      try { r.json = JSON.parse(r.text); } catch (e) { r.json = null; }
    }
    r.ms = performance.now() - t0;
    if (!resp.ok) {
      r.error = describe(resp.status, r.json, r.text);
      if (resp.status === 401) showLogin(r.error);
    }
    return r;
  }

  // ---- views ---------------------------------------------------------------

  const views = ['cluster', 'query', 'schema', 'log', 'actions'];
  let current = 'cluster';

  function showView() {
    const want = location.hash.replace('#', '');
    current = views.includes(want) ? want : 'cluster';
    for (const v of views) $('view-' + v).hidden = v !== current || !$('login').hidden;
    for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.view === current);
    if (current === 'schema' && !schemaLoaded) loadSchema();
    if (current === 'log') loadLog();
    if (current === 'actions') renderActions();
  }

  // ---- sign-in -------------------------------------------------------------

  function showLogin(why) {
    $('login').hidden = false;
    $('login-error').textContent = why || '';
    for (const v of views) $('view-' + v).hidden = true;
    $('login-user').focus();
  }

  function signedIn() {
    $('login').hidden = true;
    const user = creds.user();
    $('user').textContent = user ? 'signed in as ' + user : '';
    $('logout').hidden = !user;
    showView();
    pollCluster();
  }

  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    creds.set($('login-user').value, $('login-password').value);
    // Any answer but 401 means the credentials are good; a 403 only says
    // what this user may not see.
    const r = await api('GET', '/log/status');
    if (r.status === 401) {
      creds.clear();
      $('login-error').textContent = 'Wrong user or password.';
      return;
    }
    $('login-password').value = '';
    signedIn();
  });

  $('logout').addEventListener('click', () => {
    creds.clear();
    $('user').textContent = '';
    $('logout').hidden = true;
    showLogin('Signed out.');
  });

  // ---- cluster -------------------------------------------------------------

  const HISTORY_MS = 5 * 60 * 1000;
  const palette = ['#1f5fa8', '#c0392b', '#1c7c3c', '#8e44ad', '#d68910', '#138d90', '#7f8c8d', '#a04000'];
  const samples = []; // {t, nodes: {url: {applied, lag}}}
  const colors = new Map(); // url → color
  const labels = new Map(); // url → label
  let polling = false;
  let self = null; // this node's row

  function nodeLabel(n) {
    if (n.role === 'slave') return 'slave ' + (n.id || '?');
    return n.role === 'node' ? 'node' : n.role;
  }

  function stateClass(s) {
    const base = (s || '').split(' ')[0];
    if (base === 'ok' || base === 'streaming') return 'good';
    if (base === 'catching_up' || base === 'bootstrapping') return 'warn';
    return 'bad';
  }

  function fmtSeconds(s) {
    if (s === undefined || s === null) return '?';
    if (s === 0) return '0s';
    if (s < 1) return Math.max(1, Math.round(s * 1000)) + 'ms';
    if (s < 60) return s.toFixed(1) + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm' + Math.round(s % 60) + 's';
    return Math.floor(s / 3600) + 'h' + Math.round((s % 3600) / 60) + 'm';
  }

  async function pollCluster() {
    if (polling || !$('login').hidden) return;
    polling = true;
    const r = await api('GET', '/log/cluster');
    polling = false;
    if (!r.ok) {
      $('cluster-error').textContent = r.error;
      return;
    }
    $('cluster-error').textContent = '';
    renderCluster(r.json);
  }

  function renderCluster(cs) {
    const tbody = $('cluster-table').tBodies[0];
    tbody.replaceChildren();
    const notes = [];
    const sample = { t: Date.now(), nodes: {} };
    for (const n of cs.nodes) {
      if (!colors.has(n.url)) colors.set(n.url, palette[colors.size % palette.length]);
      labels.set(n.url, nodeLabel(n));
      if (n.self) self = n;
      const lag = n.lag_entries === undefined ? '?' : (n.role === 'master' && !n.lag_entries ? '-' : n.lag_entries);
      const behind = n.role === 'master' ? '-' : fmtSeconds(n.behind_seconds);
      // The node above says when to the second.
      const seen = n.last_seen_seconds === undefined ? '-'
        : n.last_seen_seconds < 1 ? '<1s ago'
        : n.last_seen_seconds < 60 ? Math.floor(n.last_seen_seconds) + 's ago' : fmtSeconds(n.last_seen_seconds) + ' ago';
      tbody.append(el('tr', { class: n.self ? 'self' : null, 'data-url': n.url },
        el('td', {}, nodeLabel(n)),
        el('td', {}, n.role),
        el('td', {}, el('a', { href: n.url + '/console/', title: "this node's console" }, n.url)),
        el('td', { class: 'state ' + stateClass(n.state) }, n.state),
        el('td', { class: 'num' }, n.applied_index),
        el('td', { class: 'num' }, lag),
        el('td', { class: 'num' }, behind),
        el('td', { class: 'num' }, seen),
        el('td', { class: 'num' }, n.epoch || '')));
      if (n.error) notes.push(nodeLabel(n) + ' (' + n.url + '): ' + n.error);
      sample.nodes[n.url] = { applied: n.applied_index, lag: n.lag_entries === undefined ? null : n.lag_entries };
    }
    $('cluster-notes').replaceChildren(...notes.map((t) => el('li', {}, t)));
    let summary = cs.master ? 'master ' + cs.master : 'no master found';
    if (cs.log_id) summary += ', log ' + cs.log_id;
    if (cs.epoch) summary += ', epoch ' + cs.epoch;
    summary += ', entries ' + cs.first_index + '–' + cs.last_index;
    const slaves = cs.nodes.filter((n) => n.role === 'slave').length;
    summary += ', ' + slaves + (slaves === 1 ? ' slave' : ' slaves');
    $('cluster-summary').textContent = summary;
    if (self) $('node').textContent = nodeLabel(self) + ' at ' + self.url;
    if (current === 'actions') renderActions();
    samples.push(sample);
    while (samples.length && samples[0].t < sample.t - HISTORY_MS) samples.shift();
    drawCharts();
  }

  // drawChart draws one line per node of value(sample-node) over the
  // samples' span (a minute at least, five at most); the y axis spans the
  // values (from 0 with fromZero).
  function drawChart(canvas, value, fromZero) {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (!w || !h) return;
    canvas.width = w * dpr;
    canvas.height = h * dpr;
    const g = canvas.getContext('2d');
    g.scale(dpr, dpr);
    g.clearRect(0, 0, w, h);
    const now = Date.now();
    const span = Math.min(HISTORY_MS, Math.max(60000, samples.length ? now - samples[0].t : 0));
    const t0 = now - span;
    let lo = Infinity, hi = -Infinity;
    for (const s of samples) {
      for (const url of Object.keys(s.nodes)) {
        const v = value(s.nodes[url]);
        if (v === null || v === undefined) continue;
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
    }
    if (lo === Infinity) { lo = 0; hi = 1; }
    if (fromZero) lo = 0;
    if (hi - lo < 4) hi = lo + 4;
    const left = 64, right = 8, top = 8, bottom = 20;
    const x = (t) => left + ((t - t0) / span) * (w - left - right);
    const y = (v) => top + (1 - (v - lo) / (hi - lo)) * (h - top - bottom);
    g.font = '11px system-ui, sans-serif';
    g.fillStyle = '#66707a';
    g.strokeStyle = '#e6e9ec';
    g.lineWidth = 1;
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    for (let i = 0; i <= 4; i++) {
      const v = lo + ((hi - lo) * i) / 4;
      g.beginPath();
      g.moveTo(left, Math.round(y(v)) + 0.5);
      g.lineTo(w - right, Math.round(y(v)) + 0.5);
      g.stroke();
      g.fillText(String(Math.round(v)), left - 4, y(v));
    }
    // Time ticks: every 15s up to a minute's span, else every minute.
    const step = span <= 60000 ? 15000 : 60000;
    g.textAlign = 'center';
    g.textBaseline = 'alphabetic';
    for (let ago = 0; ago <= span; ago += step) {
      const label = ago === 0 ? 'now' : '-' + (step < 60000 ? ago / 1000 + 's' : ago / 60000 + 'm');
      g.fillText(label, Math.max(left + 10, Math.min(x(now - ago), w - right - 10)), h - 5);
    }
    g.lineWidth = 2;
    for (const [url, color] of colors) {
      g.strokeStyle = color;
      g.beginPath();
      let pen = false;
      for (const s of samples) {
        const n = s.nodes[url];
        const v = n ? value(n) : null;
        if (v === null || v === undefined || s.t < t0) { pen = false; continue; }
        if (pen) g.lineTo(x(s.t), y(v)); else g.moveTo(x(s.t), y(v));
        pen = true;
      }
      g.stroke();
    }
  }

  function drawCharts() {
    drawChart($('chart-applied'), (n) => n.applied, false);
    drawChart($('chart-lag'), (n) => n.lag, true);
    const items = [];
    for (const [url, color] of colors) {
      const sw = el('i');
      sw.style.background = color;
      items.push(el('span', {}, sw, labels.get(url) + ' ' + url));
    }
    $('chart-legend').replaceChildren(...items);
  }

  // ---- query ---------------------------------------------------------------

  // splitSQL cuts text into statements at the semicolons outside strings,
  // identifiers, comments and trigger bodies; statements that are only
  // comments are dropped. The node splits again what it is sent.
  function splitSQL(text) {
    const out = [];
    let start = 0, i = 0, depth = 0, words = [];
    const n = text.length;
    while (i < n) {
      const c = text[i];
      if (c === "'" || c === '"' || c === '`') {
        i++;
        while (i < n && !(text[i] === c && text[i + 1] !== c)) i += text[i] === c ? 2 : 1;
        i++;
      } else if (c === '[') {
        const j = text.indexOf(']', i + 1);
        i = j < 0 ? n : j + 1;
      } else if (c === '-' && text[i + 1] === '-') {
        const j = text.indexOf('\n', i);
        i = j < 0 ? n : j + 1;
      } else if (c === '/' && text[i + 1] === '*') {
        const j = text.indexOf('*/', i + 2);
        i = j < 0 ? n : j + 2;
      } else if (/[A-Za-z_]/.test(c)) {
        let j = i;
        while (j < n && /[A-Za-z0-9_$]/.test(text[j])) j++;
        const w = text.slice(i, j).toUpperCase();
        if (words.length < 4) words.push(w);
        const trigger = words[0] === 'CREATE' && (words[1] === 'TRIGGER' || words[2] === 'TRIGGER');
        if (trigger && (w === 'BEGIN' || w === 'CASE')) depth++;
        if (trigger && w === 'END' && depth > 0) depth--;
        i = j;
      } else if (c === ';' && depth === 0) {
        out.push(text.slice(start, i + 1));
        start = i + 1;
        words = [];
        i++;
      } else {
        i++;
      }
    }
    out.push(text.slice(start));
    const onlyComments = /^(\s|--[^\n]*(\n|$)|\/\*[\s\S]*?\*\/|;)*$/;
    return out.map((s) => s.trim()).filter((s) => !onlyComments.test(s));
  }

  function cell(v) {
    if (v === null || v === undefined) return el('td', { class: 'val' }, el('span', { class: 'null' }, 'NULL'));
    if (typeof v === 'object') return el('td', { class: 'val' }, JSON.stringify(v));
    return el('td', { class: typeof v === 'number' ? 'val num' : 'val' }, String(v));
  }

  const MAX_ROWS = 1000;

  // rowsTable shows a result's rows (rqlite's columns, types and values).
  function rowsTable(res) {
    const values = res.values || [];
    const t = el('table', { class: 'grid rows' },
      el('thead', {}, el('tr', {}, (res.columns || []).map((c, i) =>
        el('th', { title: (res.types && res.types[i]) || '' }, c)))),
      el('tbody', {}, values.slice(0, MAX_ROWS).map((row) => el('tr', {}, row.map(cell)))));
    return t;
  }

  function renderResults(stmts, r, note) {
    const box = $('results');
    box.replaceChildren();
    if (note) box.append(el('p', { class: 'muted' }, note));
    if (!r.ok) {
      box.append(el('p', { class: 'error' }, r.error));
      return;
    }
    if (r.json && r.json.error) box.append(el('p', { class: 'error' }, r.json.error));
    const results = (r.json && r.json.results) || [];
    results.forEach((res, i) => {
      const sql = stmts[i] || '';
      const div = el('div', { class: 'result' },
        el('h4', {}, 'Statement ' + (i + 1) + ': ', el('code', {}, sql.length > 120 ? sql.slice(0, 120) + '…' : sql)));
      const time = res.time !== undefined ? ' in ' + (res.time * 1000).toFixed(2) + ' ms' : '';
      if (res.error) {
        div.append(el('p', { class: 'error' }, res.error));
      } else if (res.columns) {
        const count = (res.values || []).length;
        div.append(rowsTable(res), el('p', { class: 'muted' },
          count + (count === 1 ? ' row' : ' rows') + (count > MAX_ROWS ? ' (the first ' + MAX_ROWS + ' shown)' : '') + time));
      } else {
        div.append(el('p', { class: 'muted' }, 'rows affected ' + (res.rows_affected || 0) +
          (res.last_insert_id ? ', last insert id ' + res.last_insert_id : '') + time));
      }
      box.append(div);
    });
  }

  // runSQL sends statements to /db/request (reads and writes); a user who
  // may only read (or only write) is sent to /db/query (/db/execute).
  async function runSQL(stmts, level) {
    const q = '?timings&level=' + encodeURIComponent(level);
    let r = await api('POST', '/db/request' + q, stmts);
    let note = '';
    if (r.status === 403) {
      const missing = ((r.json && r.json.error) || '').match(/lacks the "(execute|query)" permission/);
      if (missing) {
        const path = missing[1] === 'execute' ? '/db/query' : '/db/execute';
        note = 'Sent to ' + path + ': the user lacks the ' + missing[1] + ' permission that /db/request needs.';
        r = await api('POST', path + q, stmts);
      }
    }
    return { r, note };
  }

  async function runQuery() {
    const text = $('sql').value;
    const stmts = splitSQL(text);
    if (!stmts.length) {
      $('results').replaceChildren(el('p', { class: 'error' }, 'No statement to run.'));
      return;
    }
    remember(text.trim());
    $('run').disabled = true;
    $('query-time').textContent = 'running…';
    const { r, note } = await runSQL(stmts, $('level').value);
    $('run').disabled = false;
    let time = 'round trip ' + r.ms.toFixed(1) + ' ms';
    if (r.json && r.json.time !== undefined) time += ', at the node ' + (r.json.time * 1000).toFixed(2) + ' ms';
    $('query-time').textContent = time;
    renderResults(stmts, r, note);
  }

  function history() {
    try { return JSON.parse(localStorage.getItem('walship.history') || '[]'); } catch (e) { return []; }
  }

  function remember(text) {
    const h = history().filter((s) => s !== text);
    h.unshift(text);
    localStorage.setItem('walship.history', JSON.stringify(h.slice(0, 50)));
    renderHistory();
  }

  function renderHistory() {
    $('history').replaceChildren(...history().map((s) =>
      el('li', { title: s, onclick: () => { $('sql').value = s; $('sql').focus(); } }, s.replace(/\s+/g, ' '))));
  }

  $('run').addEventListener('click', runQuery);
  $('sql').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      runQuery();
    }
  });
  $('history-clear').addEventListener('click', () => {
    localStorage.removeItem('walship.history');
    renderHistory();
  });

  // ---- schema --------------------------------------------------------------

  let schemaLoaded = false;
  let schemaSelected = null;

  const quoteIdent = (name) => '"' + name.replace(/"/g, '""') + '"';

  // read runs read-only statements at the chosen read level.
  async function read(stmts) {
    const r = await api('POST', '/db/query?level=' + encodeURIComponent($('level').value), stmts);
    if (!r.ok) return { error: r.error };
    if (r.json.error) return { error: r.json.error };
    return { results: r.json.results };
  }

  async function loadSchema() {
    schemaLoaded = true;
    $('schema-error').textContent = '';
    // Without SQLite's own tables and walship's (_walship*), as the shell.
    const r = await read(["SELECT type, name FROM sqlite_schema WHERE type IN ('table', 'view') AND lower(name) NOT GLOB 'sqlite_*' AND lower(name) NOT GLOB '_walship*' ORDER BY name"]);
    if (r.error) {
      $('schema-error').textContent = r.error;
      schemaLoaded = false;
      return;
    }
    const objs = (r.results[0].values || []).map(([type, name]) => ({ type, name }));
    const tables = objs.filter((o) => o.type === 'table');
    const counts = {};
    if (tables.length) {
      const c = await read(tables.map((t) => 'SELECT count(*) FROM ' + quoteIdent(t.name)));
      if (!c.error) tables.forEach((t, i) => { counts[t.name] = c.results[i].error ? '?' : c.results[i].values[0][0]; });
    }
    const list = $('schema-tables');
    list.replaceChildren(...objs.map((o) => el('li', {
      'data-name': o.name, class: o.name === schemaSelected ? 'active' : null,
      onclick: () => showTable(o),
    }, o.name, o.type === 'view' ? el('span', { class: 'count' }, 'view') : el('span', { class: 'count' }, counts[o.name] ?? ''))));
    if (!objs.length) list.append(el('li', { class: 'muted' }, 'no tables'));
    const sel = objs.find((o) => o.name === schemaSelected);
    if (sel) showTable(sel);
  }

  async function showTable(o) {
    schemaSelected = o.name;
    for (const li of $('schema-tables').children) li.classList.toggle('active', li.dataset.name === o.name);
    const r = await read([
      ['SELECT sql FROM sqlite_schema WHERE name = ?', o.name],
      ['SELECT cid, name, type, "notnull", dflt_value, pk FROM pragma_table_info(?)', o.name],
      ["SELECT il.name, il.\"unique\", il.origin, (SELECT group_concat(ii.name, ', ') FROM pragma_index_info(il.name) ii) AS columns, s.sql FROM pragma_index_list(?) il LEFT JOIN sqlite_schema s ON s.name = il.name ORDER BY il.name", o.name],
      ["SELECT name, sql FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = ? ORDER BY name", o.name],
      'SELECT * FROM ' + quoteIdent(o.name) + ' LIMIT 100',
    ]);
    const box = $('schema-detail');
    if (r.error) {
      box.replaceChildren(el('p', { class: 'error' }, r.error));
      return;
    }
    const [def, cols, idx, trg, rows] = r.results;
    const section = (title, res, empty) => {
      if (res.error) return [el('h3', {}, title), el('p', { class: 'error' }, res.error)];
      if (!(res.values || []).length) return [el('h3', {}, title), el('p', { class: 'muted' }, empty)];
      return [el('h3', {}, title), rowsTable(res)];
    };
    const sql = def.values && def.values[0] ? def.values[0][0] : '';
    const count = (rows.values || []).length;
    box.replaceChildren(
      el('h2', {}, o.name, ' ', el('span', { class: 'muted' }, o.type)),
      el('pre', { class: 'sql' }, sql),
      ...section('Columns', cols, 'no columns'),
      ...section('Indexes', idx, 'no indexes'),
      ...section('Triggers', trg, 'no triggers'),
      ...section(count >= 100 ? 'The first 100 rows' : 'Rows (' + count + ')', rows, 'no rows'));
  }

  $('schema-refresh').addEventListener('click', loadSchema);

  // ---- log -----------------------------------------------------------------

  function fmtBytes(n) {
    if (n === undefined || n === null) return '?';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + ' ' + units[i];
  }

  let logBusy = false;

  async function loadLog() {
    if (logBusy) return;
    logBusy = true;
    const [r, st] = await Promise.all([api('GET', '/log/recent?n=' + $('log-n').value), api('GET', '/log/status')]);
    logBusy = false;
    if (!r.ok) {
      $('log-error').textContent = r.error;
      return;
    }
    $('log-error').textContent = '';
    const lg = r.json;
    const ret = lg.retention || {};
    const caps = [];
    if (ret.entries) caps.push('at most ' + ret.entries + ' entries');
    if (ret.bytes) caps.push('at most ' + fmtBytes(ret.bytes));
    if (ret.for) caps.push('entries for ' + ret.for);
    const info = [
      ['log', (lg.role === 'master' ? "the master's" : "this slave's copy of the master's") + ', id ' + lg.log_id],
      ['epoch', lg.epoch],
      ['first index', lg.first_index],
      ['last index', lg.last_index],
      ['entries', lg.last_index >= lg.first_index ? lg.last_index - lg.first_index + 1 : 0],
      ['size', fmtBytes(lg.log_bytes) + ' in ' + lg.log_segments + (lg.log_segments === 1 ? ' file' : ' files')],
      ['retention', caps.length ? caps.join(', ') + ' (removed once a snapshot covers them)' : 'not bounded'],
    ];
    if (st.ok && st.json) {
      const s = st.json;
      if (s.snapshot_index !== undefined) info.push(['latest snapshot', 'index ' + s.snapshot_index + ', ' + fmtSeconds(s.snapshot_age_seconds) + ' old']);
      if (s.archive_dir) info.push(['archive', s.archive_dir + (s.archive_index !== undefined ? ', through index ' + s.archive_index : '') + (s.archive_error ? ' — failing: ' + s.archive_error : '')]);
      if (s.last_check) info.push(['last replica check', s.last_check.result + ' at index ' + s.last_check.index + (s.last_check.error ? ': ' + s.last_check.error : '')]);
    }
    $('log-info').replaceChildren(...info.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, String(v))]));
    const tbody = $('log-entries').tBodies[0];
    tbody.replaceChildren(...lg.entries.slice().reverse().map((e) => {
      const stmts = el('td', {});
      if (e.txn) stmts.append(el('span', { class: 'badge' }, 'transaction'));
      if (e.check) stmts.append(el('span', { class: 'badge' }, 'replica check: ' + e.check));
      for (const s of e.statements) {
        stmts.append(el('code', { class: 'stmt' }, s.sql + (s.sql_truncated ? '…' : ''),
          s.params !== undefined ? el('span', { class: 'params' }, '  ← ' + JSON.stringify(s.params)) : null));
      }
      if (e.statement_count > e.statements.length) stmts.append(el('span', { class: 'muted' }, '… and ' + (e.statement_count - e.statements.length) + ' more statements'));
      return el('tr', {}, el('td', { class: 'num' }, e.index), el('td', { class: 'num' }, e.epoch),
        el('td', { title: e.time }, new Date(e.time).toLocaleString()), stmts);
    }));
  }

  $('log-refresh').addEventListener('click', loadLog);
  $('log-n').addEventListener('change', loadLog);

  // ---- actions -------------------------------------------------------------

  function out(id, r, ok) {
    const p = $(id);
    p.className = 'out ' + (r.ok ? 'ok' : 'bad');
    p.textContent = r.ok ? ok(r) : r.error;
  }

  function renderActions() {
    const slave = self && self.role === 'slave';
    $('promote').disabled = !slave;
    $('promote-why').textContent = slave
      ? 'Make this slave the master (POST /node/promote; permission leader-ops). The old master is fenced if it answers.'
      : "This node is not a slave. To promote a slave, open its console: the links in the cluster view.";
  }

  $('backup').addEventListener('click', async () => {
    $('backup').disabled = true;
    $('backup-out').textContent = 'taking the backup…';
    const r = await api('GET', '/db/backup', undefined, { blob: true });
    $('backup').disabled = false;
    out('backup-out', r, () => {
      const a = el('a', { href: URL.createObjectURL(r.blob), download: 'walship-' + location.host.replace(/[^A-Za-z0-9.-]/g, '_') + '-' + new Date().toISOString().replace(/[:.]/g, '') + '.sqlite' });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 60000);
      return 'Downloaded ' + fmtBytes(r.blob.size) + ' in ' + r.ms.toFixed(0) + ' ms.';
    });
  });

  $('restore').addEventListener('click', () => {
    const f = $('restore-file').files[0];
    if (!f) {
      $('restore-out').className = 'out bad';
      $('restore-out').textContent = 'Choose a SQLite file first.';
      return;
    }
    $('restore-name').textContent = f.name + ' (' + fmtBytes(f.size) + ')';
    $('restore-confirm').hidden = false;
  });
  $('restore-no').addEventListener('click', () => { $('restore-confirm').hidden = true; });
  $('restore-yes').addEventListener('click', async () => {
    $('restore-confirm').hidden = true;
    const f = $('restore-file').files[0];
    $('restore-out').className = 'out';
    $('restore-out').textContent = 'sending ' + f.name + '…';
    const r = await api('POST', '/db/load', f);
    out('restore-out', r, () => 'Restored from ' + f.name + ': the database is at index ' + (r.headers.get('X-Walship-Index') || '?') + ' of a new history.');
    schemaLoaded = false;
  });

  $('verify').addEventListener('click', async () => {
    $('verify').disabled = true;
    $('verify-out').className = 'out';
    $('verify-out').textContent = 'checking…';
    const r = await api('POST', '/db/verify?wait');
    $('verify').disabled = false;
    out('verify-out', r, () => 'The master hashed its content at index ' + r.json.index + ' (' +
      Object.keys(r.json.sums || {}).length + ' parts, logged at index ' + r.json.result_index +
      '); each slave compares when it applies that entry and reports in its /log/status (last_check).');
  });

  $('promote').addEventListener('click', () => { $('promote-confirm').hidden = false; });
  $('promote-no').addEventListener('click', () => { $('promote-confirm').hidden = true; });
  $('promote-yes').addEventListener('click', async () => {
    $('promote-confirm').hidden = true;
    $('promote-out').className = 'out';
    $('promote-out').textContent = 'promoting…';
    const r = await api('POST', '/node/promote');
    out('promote-out', r, () => 'This node is the master now: epoch ' + r.json.epoch + ', index ' + r.json.index +
      (r.json.previous ? '; it replaced ' + r.json.previous : '') + '.');
  });

  // ---- start ---------------------------------------------------------------

  window.addEventListener('hashchange', showView);
  renderHistory();
  setInterval(pollCluster, 1000);
  setInterval(() => {
    if (current === 'log' && $('log-live').checked && $('login').hidden) loadLog();
  }, 2000);
  (async () => {
    const r = await api('GET', '/log/status');
    if (r.status !== 401) signedIn();
  })();
})();
