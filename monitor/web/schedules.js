// The Schedules card: recurring schedules with their next run, and the
// delayed events waiting for their deliver_at (GET /api/schedules). It uses
// app.js's api() and $ and, like app.js, puts data into the DOM through
// textContent only.
"use strict";

const SCHEDULES_POLL_MS = 5000;

function scheduleCell(text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text;
  return td;
}

function scheduleTable(headers, rows) {
  const table = document.createElement("table");
  const head = document.createElement("tr");
  for (const name of headers) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = name;
    head.append(th);
  }
  const thead = document.createElement("thead");
  thead.append(head);
  const tbody = document.createElement("tbody");
  tbody.append(...rows);
  table.append(thead, tbody);
  return table;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "–";
}

function renderSchedules(data) {
  const schedulesRoot = $("schedules");
  const delayedRoot = $("delayed");
  schedulesRoot.replaceChildren();
  delayedRoot.replaceChildren();
  $("schedules-state").textContent = data.schedules.length ? "" : "No schedules.";
  if (data.schedules.length) {
    schedulesRoot.append(scheduleTable(["Name", "Cron", "Zone", "Event type", "Last run", "Next run"],
      data.schedules.map((s) => {
        const tr = document.createElement("tr");
        tr.dataset.testid = "schedule";
        const next = s.enabled ? (s.next_run_at ? when(s.next_run_at) : (s.problem || "–")) : "disabled";
        tr.append(scheduleCell(s.name), scheduleCell(s.cron, "mono"), scheduleCell(s.timezone || "UTC"),
          scheduleCell(s.event_type), scheduleCell(when(s.last_run_at)), scheduleCell(next));
        tr.lastChild.dataset.testid = "schedule-next-run";
        return tr;
      })));
  }
  const shown = data.delayed.length;
  $("delayed-state").textContent = shown
    ? (data.delayed_count > shown ? `${data.delayed_count} delayed events waiting; the ${shown} soonest:` : `${shown} delayed event${shown === 1 ? "" : "s"} waiting.`)
    : "No delayed events waiting.";
  $("delayed-state").dataset.count = String(data.delayed_count);
  if (shown) {
    delayedRoot.append(scheduleTable(["Deliver at", "Type", "Aggregate", "Event"],
      data.delayed.map((d) => {
        const tr = document.createElement("tr");
        tr.dataset.testid = "delayed-event";
        tr.append(scheduleCell(when(d.deliver_at)), scheduleCell(d.event_type),
          scheduleCell(`${d.aggregate_type} ${d.aggregate_id}`, "mono"), scheduleCell(d.id, "mono"));
        return tr;
      })));
  }
}

async function refreshSchedules() {
  if ($("app").hidden || !sessionStorage.getItem(TOKEN_KEY)) return;
  try {
    renderSchedules(await api("/api/schedules"));
  } catch (err) {
    // app.js's refresh reports sign-in problems; this card only says it failed.
    $("schedules-state").textContent = `Could not load schedules: ${err.message}`;
  }
}

function startSchedules() {
  refreshSchedules();
  setInterval(refreshSchedules, SCHEDULES_POLL_MS);
  // Shown right after signing in, not a poll later.
  new MutationObserver(() => { if (!$("app").hidden) refreshSchedules(); })
    .observe($("app"), { attributes: true, attributeFilter: ["hidden"] });
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", startSchedules);
else startSchedules();
