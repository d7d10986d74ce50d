// The page of batch-enroll serve. Every cell of a sheet is put into the page as text
// (textContent), never as HTML, so no sheet can run script or change the page.
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const maxMb = parseFloat(document.querySelector('meta[name="max-upload-mb"]').content);
  const $ = (id) => document.getElementById(id);
  const TONE = {
    ok: "s-good", enrolled: "s-good", unenrolled: "s-good",
    already_enrolled: "s-info", skipped_enrolled: "s-info", waitlisted: "s-info",
    warning: "s-warn", not_attempted: "s-warn",
    duplicate: "s-grey",
    invalid: "s-bad", failed: "s-bad",
    running: "s-info", done: "s-good", stopped: "s-warn",
  };
  const LABEL = {
    ok: "ready to send", warning: "ready, with a warning", invalid: "to fix",
    duplicate: "repeated row, not sent", enrolled: "done", unenrolled: "done",
    already_enrolled: "were enrolled already", skipped_enrolled: "skipped, enrolled already",
    waitlisted: "on the waiting list", failed: "refused by LMS365", not_attempted: "not sent",
  };
  const RUN_ORDER = [
    "enrolled", "already_enrolled", "skipped_enrolled", "waitlisted", "unenrolled",
    "duplicate", "invalid", "failed", "not_attempted",
  ];
  const PROBLEMS = new Set(["invalid", "failed", "warning", "not_attempted", "duplicate"]);
  const ROW_LIMIT = 2000;
  let checked = null;   // the answer of POST /api/uploads
  let runId = null;
  let pollTimer = null;
  let polls = 0;

  function el(tag, props, children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (k === "text") node.textContent = v;
        else if (k === "className") node.className = v;
        else node.setAttribute(k, v);
      }
    }
    for (const child of children || []) node.append(child);
    return node;
  }

  function showError(message) {
    const box = $("alert");
    box.textContent = message;
    box.hidden = !message;
    if (message) box.scrollIntoView({ block: "nearest" });
  }

  async function api(method, url, body) {
    const init = { method, headers: { "X-CSRF-Token": csrf }, credentials: "same-origin" };
    if (body !== undefined) init.body = body;
    const response = await fetch(url, init);
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : {}; } catch (e) { data = null; }
    if (!response.ok) {
      if (response.status === 401) { window.location.assign("/login"); }
      const message = data && data.error ? data.error : `the server answered ${response.status}`;
      throw new Error(message);
    }
    if (data === null) throw new Error("the server sent an answer this page cannot read");
    return data;
  }

  function pill(status) {
    return el("span", { className: `pill ${TONE[status] || "s-grey"}`, text: status });
  }

  function renderCounts(box, counts, order, always) {
    box.replaceChildren();
    const keys = order || Object.keys(counts);
    for (const status of keys) {
      const n = counts[status] || 0;
      if (!n && !(always || []).includes(status)) continue;
      box.append(el("div", { className: `count ${TONE[status] || "s-grey"}`, "data-status": status }, [
        el("b", { text: String(n) }),
        el("span", { text: LABEL[status] && LABEL[status] !== status ? `${status} · ${LABEL[status]}` : status }),
      ]));
    }
  }

  // -- 1. upload and check --------------------------------------------------------------

  async function upload(file) {
    showError("");
    if (file.size > maxMb * 1024 * 1024) {
      showError(`${file.name}: the file is larger than the ${maxMb} MB this server accepts`);
      return;
    }
    $("checking-file").textContent = file.name;
    $("checking").hidden = false;
    $("checked-card").hidden = true;
    const form = new FormData();
    form.append("file", file, file.name);
    try {
      const answer = await api("POST", "/api/uploads", form);
      sessionStorage.setItem("upload", answer.id);
      sessionStorage.removeItem("run");
      hideRun();
      showChecked(answer);
    } catch (err) {
      showError(err.message);
    } finally {
      $("checking").hidden = true;
      $("file").value = "";
    }
  }

  function showChecked(answer) {
    checked = answer;
    $("checked-file").textContent = answer.file;
    const rows = answer.rows.length;
    const s = answer.summary || {};
    $("checked-note").textContent = `${rows} row${rows === 1 ? "" : "s"} checked`;
    showSheet(answer.sheet, s.notes || []);
    // The course and session rules could not be read: say so above the counts.
    $("checked-warning").textContent = s.stopped_because
      ? `Only the cells were checked: ${s.stopped_because}` : "";
    $("checked-warning").hidden = !s.stopped_because;
    renderCounts($("check-counts"), answer.counts, ["ok", "warning", "invalid", "duplicate"], ["ok", "invalid"]);
    const n = answer.plan.rows;
    const button = $("enroll");
    button.textContent = `Enroll ${n} row${n === 1 ? "" : "s"}`;
    button.disabled = n === 0;
    $("checked-card").hidden = false;
    $("drop").classList.add("compact");
    renderRows();
  }

  // Which sheet and header row were read; a workbook's other sheets can be picked.
  function showSheet(sheet, notes) {
    const line = $("sheet-line");
    if (!sheet) { line.hidden = true; return; }
    // The library's own words: which sheet and header row it read, and what it passed over.
    $("sheet-read").textContent = notes.join(" ");
    const pick = $("sheet-pick");
    const names = sheet.sheet_names || [];
    pick.replaceChildren(...names.map((name) => {
      const hidden = (sheet.hidden_sheets || []).includes(name);
      const option = el("option", { value: name, text: hidden ? `${name} (hidden)` : name });
      if (name === sheet.name) option.selected = true;
      return option;
    }));
    $("sheet-pick-label").hidden = names.length < 2;
    line.hidden = !notes.length && names.length < 2;
  }

  async function pickSheet() {
    if (!checked) return;
    showError("");
    $("checking-file").textContent = `${checked.file}, sheet "${$("sheet-pick").value}"`;
    $("checking").hidden = false;
    try {
      const body = JSON.stringify({ sheet: $("sheet-pick").value });
      showChecked(await api("POST", `/api/uploads/${checked.id}/check`, body));
    } catch (err) {
      showError(err.message);
      showSheet(checked.sheet, (checked.summary && checked.summary.notes) || []);
    } finally {
      $("checking").hidden = true;
    }
  }

  function problemOf(row, advice) {
    const code = row.error_code;
    const known = code && advice[code];
    if (!code && row.warnings) return { text: row.warnings, detail: "", todo: "" };
    if (!code) return { text: "", detail: "", todo: "" };
    const text = known && known.meaning ? known.meaning : row.error_message;
    const detail = known && row.error_message && row.error_message !== text ? row.error_message : "";
    return { text, detail, todo: known ? known.todo : "" };
  }

  // One table for the checked sheet and for a run's results: the same columns, filters, groups.
  function renderTable(view) {
    const { table, data, onlyProblems, byCourse, shown } = view;
    const columns = [
      ["row", "Row", "num"], ["status", "Status", ""], ["course_id", "Course", "mono"],
      ["user_login_name", "Login", "login"], ["course_session_ids", "Sessions", "mono sessions"],
      ["_problem", "Problem", "problem"], ["_todo", "What to do", "todo"],
    ];
    // Columns the check adds (course titles, resolved ids) before the sheet's own.
    for (const name of data.added_columns || []) columns.push([name, name.replace(/_/g, " "), ""]);
    for (const name of data.sheet_columns) columns.push([name, name, "sheet"]);
    const head = el("tr", null, columns.map(([, label, cls]) => el("th", { className: cls, text: label })));
    table.tHead.replaceChildren(head);

    let rows = data.rows;
    if (onlyProblems.checked) rows = rows.filter((r) => PROBLEMS.has(r.status));
    const grouped = byCourse.checked;
    // Group by the course a cell resolved to where the check names it, else by the cell.
    const courseOf = (r) => String(r.lms_course_id || r.course_id || "");
    // Groups in the order of what people read: the course's title, else its cell.
    const labelOf = (r) => `${r.course_title || r.course_id || ""}\u0000${courseOf(r)}`;
    if (grouped) {
      rows = rows.slice().sort((a, b) => labelOf(a).localeCompare(labelOf(b), undefined, { numeric: true }) || a.row - b.row);
    }
    const body = document.createElement("tbody");
    let course = null;
    for (const row of rows.slice(0, ROW_LIMIT)) {
      if (grouped && courseOf(row) !== course) {
        course = courseOf(row);
        const inCourse = rows.filter((r) => courseOf(r) === course);
        const bad = inCourse.filter((r) => r.status === "invalid" || r.status === "failed").length;
        const name = row.course_title ? `${row.course_id} · ${row.course_title}` : row.course_id;
        const title = `Course ${name || "(empty)"} · ${inCourse.length} row${inCourse.length === 1 ? "" : "s"}` +
          (bad ? ` · ${bad} to fix` : "");
        body.append(el("tr", { className: "group" }, [el("td", { colspan: String(columns.length), text: title })]));
      }
      const problem = problemOf(row, data.advice);
      const cells = columns.map(([name, , cls]) => {
        if (name === "status") return el("td", null, [pill(row.status)]);
        if (name === "_problem") {
          const td = el("td", { className: cls, text: problem.text });
          if (problem.detail) td.append(el("span", { className: "detail", text: problem.detail }));
          return td;
        }
        if (name === "_todo") return el("td", { className: cls, text: problem.todo });
        if (name === "course_session_ids") {
          const parts = String(row[name] || "").split(/(?<=[;|])/);
          return el("td", { className: cls }, parts.map((part) => el("span", { text: part })));
        }
        return el("td", { className: cls, text: String(row[name] ?? "") });
      });
      body.append(el("tr", { "data-status": row.status }, cells));
    }
    table.replaceChild(body, table.tBodies[0]);
    shown.textContent = rows.length > ROW_LIMIT
      ? `showing the first ${ROW_LIMIT} of ${rows.length} rows`
      : `showing ${rows.length} of ${data.rows.length} rows`;
  }

  function renderRows() {
    if (!checked) return;
    renderTable({
      table: $("rows"), data: checked, onlyProblems: $("only-problems"),
      byCourse: $("group-course"), shown: $("shown"),
    });
  }

  let results = null;  // the answer of GET /api/runs/{run}/rows

  function renderResults() {
    if (!results) return;
    renderTable({
      table: $("results"), data: results, onlyProblems: $("res-only-problems"),
      byCourse: $("res-group-course"), shown: $("res-shown"),
    });
  }

  async function loadResults(id) {
    try {
      const answer = await api("GET", `/api/runs/${id}/rows`);
      if (id !== runId) return;
      results = answer;
      $("results-part").hidden = false;
      renderResults();
    } catch (err) {
      $("results-part").hidden = true;  // a run that failed before writing results has none
    }
  }

  // -- 2. enroll ------------------------------------------------------------------------

  function confirmText(plan) {
    const rows = `${plan.rows} row${plan.rows === 1 ? "" : "s"}`;
    const courses = `${plan.courses} course${plan.courses === 1 ? "" : "s"}`;
    const un = plan.unenrollments
      ? `, including ${plan.unenrollments} unenrollment${plan.unenrollments === 1 ? "" : "s"}`
      : ", no unenrollments";
    return `Send ${rows} to LMS365, in ${courses}${un}.`;
  }

  function askToEnroll() {
    if (!checked || !checked.plan.rows) return;
    $("confirm-text").textContent = confirmText(checked.plan);
    $("confirm").showModal();
  }

  async function enroll() {
    showError("");
    try {
      const answer = await api("POST", `/api/uploads/${checked.id}/run`);
      attach(answer.run);
    } catch (err) {
      showError(err.message);
    }
  }

  // -- 3. progress, stop, resume, summary -----------------------------------------------

  function hideRun() {
    if (pollTimer) clearTimeout(pollTimer);
    pollTimer = null;
    runId = null;
    $("run-card").hidden = true;
  }

  function attach(id) {
    runId = id;
    sessionStorage.setItem("run", id);
    $("checked-card").hidden = true;
    $("drop").classList.add("compact");
    $("run-card").hidden = false;
    $("done").hidden = true;
    $("results-part").hidden = true;
    results = null;
    poll().then(loadHistory);
  }

  async function poll() {
    if (pollTimer) clearTimeout(pollTimer);
    pollTimer = null;
    const id = runId;
    if (!id) return;
    let run;
    try {
      run = await api("GET", `/api/runs/${id}`);
    } catch (err) {
      showError(err.message);
      if (err.message === "no such run") { sessionStorage.removeItem("run"); hideRun(); return; }
      pollTimer = setTimeout(poll, 2000);
      return;
    }
    if (id !== runId) return;
    showRun(run);
    polls += 1;
    if (run.state === "running") {
      if (polls % 6 === 0) loadHistory();  // the history's row of this run, every 3 s
      pollTimer = setTimeout(poll, 500);
    } else {
      loadHistory();
    }
  }

  function showRun(run) {
    const running = run.state === "running";
    const share = run.total ? Math.round((100 * run.done) / run.total) : (running ? 0 : 100);
    $("bar-fill").style.width = `${share}%`;
    $("bar").setAttribute("aria-valuenow", String(share));
    $("bar").className = `progress ${run.state}`;
    $("run-done").textContent = String(run.done);
    $("run-total").textContent = String(run.total);
    $("run-rate").textContent = String(run.rate);
    $("run-state").textContent = run.state;
    $("run-heading").textContent = {
      running: "Enrolling", done: "Done", stopped: "Stopped", failed: "Failed",
    }[run.state] || run.state;
    $("run-file").textContent = `${run.file} · started ${when(run.started_at)}`;
    const order = RUN_ORDER.concat(Object.keys(run.counts).filter((s) => !RUN_ORDER.includes(s)));
    renderCounts($("run-counts"), run.counts, order, ["enrolled"]);
    $("run-error").textContent = run.error || "";
    $("run-error").hidden = !run.error;
    $("stop").hidden = !running;
    $("resume").hidden = !run.resumable;
    $("done").hidden = running;
    if (!running) {
      showSummary(run);
      if (!results || results.run !== run.run) loadResults(run.run);
    }
  }

  function showSummary(run) {
    const links = run.downloads || {};
    for (const [kind, id] of [["csv", "dl-csv"], ["xlsx", "dl-xlsx"]]) {
      const a = $(id);
      a.hidden = !links[kind];
      if (links[kind]) a.href = links[kind];
    }
    const box = $("problems");
    box.replaceChildren();
    const errors = (run.summary && run.summary.errors) || {};
    const codes = Object.keys(errors);
    $("no-problems").hidden = codes.length > 0 || !run.summary;
    for (const code of codes) {
      const p = errors[code];
      const more = p.count > p.rows.length ? " …" : "";
      const card = el("div", { className: "problem-card", "data-code": code }, [
        el("h4", null, [el("span", { text: code }), el("span", { className: "muted", text: `× ${p.count}` })]),
        el("p", { text: p.meaning }),
        el("p", { className: "rows-list", text: `${p.count === 1 ? "row" : "rows"} ${p.rows.join(", ")}${more}` }),
      ]);
      if (p.advice) {
        card.append(el("p", { className: "todo" }, [el("b", { text: "What to do: " }), document.createTextNode(p.advice)]));
      }
      box.append(card);
    }
  }

  async function stopRun() {
    if (!runId) return;
    $("stop").disabled = true;
    try {
      await api("POST", `/api/runs/${runId}/stop`);
      poll();
    } catch (err) {
      showError(err.message);
    } finally {
      $("stop").disabled = false;
    }
  }

  async function resumeRun(id) {
    showError("");
    try {
      const answer = await api("POST", `/api/runs/${id}/resume`);
      attach(answer.run);
      loadHistory();
    } catch (err) {
      showError(err.message);
    }
  }

  // -- history --------------------------------------------------------------------------

  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
  }

  function outcome(counts) {
    return Object.entries(counts || {}).filter(([, n]) => n).map(([s, n]) => `${n} ${s}`).join(" · ");
  }

  async function loadHistory() {
    let answer;
    try {
      answer = await api("GET", "/api/runs");
    } catch (err) {
      showError(err.message);
      return [];
    }
    const body = document.createElement("tbody");
    for (const run of answer.runs) {
      const links = el("td");
      for (const [kind, label] of [["xlsx", ".xlsx"], ["csv", ".csv"]]) {
        const href = run.downloads && run.downloads[kind];
        if (href) links.append(el("a", { className: "button secondary", href, download: "", text: label }), " ");
      }
      const actions = el("td");
      const view = el("button", { type: "button", className: "secondary", text: "Show" });
      view.addEventListener("click", () => attach(run.run));
      actions.append(view);
      if (run.resumable) {
        const resume = el("button", { type: "button", className: "primary", text: "Resume" });
        resume.addEventListener("click", () => resumeRun(run.run));
        actions.append(" ", resume);
      }
      body.append(el("tr", { "data-run": run.run }, [
        el("td", { text: when(run.started_at) }),
        el("td", { text: run.file }),
        el("td", null, [pill(run.state)]),
        el("td", {
          className: "num",
          text: run.state === "running"
            ? `${run.done} / ${run.total}`
            : String(Object.values(run.counts || {}).reduce((a, b) => a + b, 0)),
        }),
        el("td", { text: outcome(run.counts) }),
        links,
        actions,
      ]));
    }
    const table = $("history");
    table.replaceChild(body, table.tBodies[0]);
    table.hidden = answer.runs.length === 0;
    $("history-empty").hidden = answer.runs.length > 0;
    return answer.runs;
  }

  // -- wiring ---------------------------------------------------------------------------

  function wire() {
    const drop = $("drop");
    $("file").addEventListener("change", (e) => { if (e.target.files.length) upload(e.target.files[0]); });
    for (const name of ["dragenter", "dragover"]) {
      drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
    }
    for (const name of ["dragleave", "drop"]) {
      drop.addEventListener(name, () => drop.classList.remove("over"));
    }
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      if (e.dataTransfer && e.dataTransfer.files.length) upload(e.dataTransfer.files[0]);
    });
    $("only-problems").addEventListener("change", renderRows);
    $("sheet-pick").addEventListener("change", pickSheet);
    $("group-course").addEventListener("change", renderRows);
    $("res-only-problems").addEventListener("change", renderResults);
    $("res-group-course").addEventListener("change", renderResults);
    $("enroll").addEventListener("click", askToEnroll);
    $("confirm").addEventListener("close", () => { if ($("confirm").returnValue === "go") enroll(); });
    $("stop").addEventListener("click", stopRun);
    $("resume").addEventListener("click", () => { if (runId) resumeRun(runId); });
    $("new-sheet").addEventListener("click", () => {
      sessionStorage.removeItem("run");
      sessionStorage.removeItem("upload");
      hideRun();
      $("checked-card").hidden = true;
      $("drop").classList.remove("compact");
      checked = null;
      $("upload-card").scrollIntoView();
    });
    const signout = $("signout");
    if (signout) {
      signout.addEventListener("click", async () => {
        await api("POST", "/api/logout");
        window.location.assign("/login");
      });
    }
  }

  async function start() {
    wire();
    const runs = await loadHistory();
    const live = runs.find((r) => r.state === "running");
    const upload = sessionStorage.getItem("upload");
    if (upload) {
      try { showChecked(await api("GET", `/api/uploads/${upload}`)); } catch (err) { sessionStorage.removeItem("upload"); }
    }
    // The run lives on the server: a reload finds it again.
    const id = live ? live.run : sessionStorage.getItem("run");
    if (id) attach(id);
  }

  start();
})();
