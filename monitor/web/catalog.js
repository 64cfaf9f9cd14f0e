// Event Bus Monitor: the Catalog view (GET /api/types). The registered event
// types, each with its versions (the current one marked), their JSON Schemas,
// how many events of each version were created in the last 24 h, and the
// latest event's payload as an example. Self-contained beside app.js: it
// reads the same session token and refreshes while the page is signed in.
// Data goes into the DOM through textContent only.
"use strict";

(() => {
  const TOKEN_KEY = "eventbus.token";
  const POLL_MS = 10000;
  const $ = (id) => document.getElementById(id);
  let timer = null;
  const open = new Set(); // "<type> v<n>" whose schema is unfolded, kept across refreshes

  async function loadTypes() {
    const res = await fetch("/api/types", {
      headers: { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) || ""}` },
      cache: "no-store",
    });
    let data = null;
    try { data = await res.json(); } catch { /* reported below */ }
    if (!res.ok) throw new Error((data && data.error) || `${res.status} ${res.statusText}`);
    return data.types;
  }

  const el = (tag, text, cls) => {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  };
  const pretty = (v) => JSON.stringify(v, null, 2);

  function render(types) {
    const root = $("catalog");
    root.replaceChildren();
    $("catalog-state").textContent = types.length ? "" : "No event types registered (eventbus types set).";
    for (const t of types) {
      const box = el("div", undefined, "catalog-type");
      box.dataset.testid = "catalog-type";
      box.dataset.type = t.event_type;
      const head = el("div", undefined, "webhook-head");
      head.append(el("span", t.event_type, "mono catalog-name"), " ",
        Object.assign(el("span", `v${t.current_version} current`, "badge badge-processed"), { title: "the version messages carry unless metadata.version names another" }));
      if (t.description) head.append(" ", el("span", t.description));
      box.append(head);

      const table = el("table");
      const hr = el("tr");
      for (const name of ["Version", "Events (24 h)", "Created", "Description", "Schema"]) {
        const th = el("th", name);
        th.scope = "col";
        hr.append(th);
      }
      table.createTHead().append(hr);
      const body = el("tbody");
      for (const v of [...t.versions].reverse()) {
        const tr = el("tr");
        tr.dataset.testid = "catalog-version";
        tr.dataset.version = String(v.version);
        const key = `${t.event_type} v${v.version}`;
        const version = el("td", v.version === t.current_version ? `v${v.version} (current)` : `v${v.version}`);
        const count = el("td", String(v.events_24h));
        count.dataset.testid = "catalog-version-events";
        const schemaCell = el("td");
        if (v.schema === null) {
          schemaCell.textContent = "none (not validated)";
        } else {
          const details = el("details");
          details.open = open.has(key);
          details.addEventListener("toggle", () => (details.open ? open.add(key) : open.delete(key)));
          details.append(el("summary", "JSON Schema"));
          const pre = el("pre", pretty(v.schema));
          pre.dataset.testid = "catalog-schema";
          details.append(pre);
          schemaCell.append(details);
        }
        tr.append(version, count, el("td", new Date(v.created_at).toLocaleString()), el("td", v.description || ""), schemaCell);
        body.append(tr);
      }
      table.append(body);
      box.append(table);

      const ex = el("div", undefined, "catalog-example");
      if (t.example) {
        ex.append(el("h3", `Example: the latest event (${t.example.status}, ${new Date(t.example.created_at).toLocaleString()})`));
        const pre = el("pre", pretty(t.example.payload));
        pre.dataset.testid = "catalog-example";
        ex.append(pre);
      } else {
        ex.append(el("p", "No event of this type yet.", "events-state"));
      }
      box.append(ex);
      root.append(box);
    }
  }

  async function refresh() {
    timer = null;
    if ($("app").hidden) return;
    try {
      render(await loadTypes());
    } catch (err) {
      $("catalog-state").textContent = `Could not load the catalog: ${err.message}`;
    }
    if (!$("app").hidden && timer === null) timer = setTimeout(refresh, POLL_MS);
  }

  // app.js shows #app after sign-in and hides it on sign-out: follow it.
  function start() {
    new MutationObserver(() => {
      if (!$("app").hidden && timer === null) refresh();
      if ($("app").hidden && timer !== null) { clearTimeout(timer); timer = null; }
    }).observe($("app"), { attributes: true, attributeFilter: ["hidden"] });
    if (!$("app").hidden) refresh();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
