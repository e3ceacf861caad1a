// Airlock catalog pages. Plain JS, no build step, no network beyond this server.
// Everything shown is built with DOM nodes and textContent: names come from uploads.
"use strict";

const API = "/_airlock/catalog/";
const TOKEN_KEY = "airlock.token";

// ---- small helpers -------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

function formatBytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? String(v) : v.toFixed(v < 10 ? 2 : 1)) + " " + units[i];
}

function formatDate(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toISOString().slice(0, 16).replace("T", " ");
}

function shortDigest(d) {
  if (!d) return "";
  const hex = d.includes(":") ? d.split(":")[1] : d;
  return (d.includes(":") ? d.split(":")[0] + ":" : "") + hex.slice(0, 12) + "…";
}

function digestCell(d) {
  return h("td", { class: "digest mono", title: d }, shortDigest(d));
}

function badge(kind) {
  const label = { model: "model", dataset: "dataset", project: "python", image: "image" }[kind] || kind;
  return h("span", { class: "badge " + kind }, label);
}

function itemLink(path, text) {
  return h("a", { href: "item.html?item=" + encodeURIComponent(path) }, text);
}

function plural(n, word) {
  return n + " " + word + (n === 1 ? "" : "s");
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

// ---- API access and the token prompt -------------------------------------------

class Unauthorized extends Error {}

async function api(path) {
  const headers = { Accept: "application/json" };
  if (token()) headers.Authorization = "Bearer " + token();
  const r = await fetch(API + path, { headers });
  const body = await r.json().catch(() => ({ error: r.status + " " + r.statusText }));
  if (r.status === 401) throw new Unauthorized(body.error);
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

// Shows why a page cannot be drawn; on 401 asks for a token and reloads with it.
function showProblem(where, err) {
  where.replaceChildren();
  if (err instanceof Unauthorized) {
    const input = h("input", { type: "password", name: "token", placeholder: "Airlock token", autocomplete: "off", required: true });
    const form = h("form", {
      onsubmit: (e) => {
        e.preventDefault();
        sessionStorage.setItem(TOKEN_KEY, input.value.trim());
        location.reload();
      },
    }, input, h("button", { class: "primary", type: "submit" }, "Continue"));
    where.append(h("div", { class: "notice", id: "token-prompt" },
      h("strong", {}, token() ? "This token was refused." : "This Airlock needs a token to read."),
      h("div", { class: "muted" }, "Give an Airlock token with a read scope. It is kept for this browser tab only (sessionStorage) and sent as a Bearer token."),
      form));
    input.focus();
    return;
  }
  where.append(h("div", { class: "notice error" }, h("strong", {}, "Could not load: "), err.message));
}

function copyText(text, button) {
  const done = () => { button.textContent = "Copied"; setTimeout(() => (button.textContent = "Copy"), 1500); };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done);
    return;
  }
  // Plain-HTTP pages have no clipboard API: copy through a selected textarea.
  const area = h("textarea", {}, text);
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.append(area);
  area.select();
  document.execCommand("copy");
  area.remove();
  done();
}

// ---- page chrome ---------------------------------------------------------------

function chrome(page) {
  const link = (href, text, name) => h("a", { href, class: page === name ? "active" : null }, text);
  const who = token()
    ? h("span", { class: "who" }, "token in use",
        h("button", { onclick: () => { sessionStorage.removeItem(TOKEN_KEY); location.reload(); } }, "Forget"))
    : null;
  document.body.prepend(h("header", { class: "top" }, h("div", { class: "bar" },
    h("a", { class: "brand", href: "/ui/" }, "Airlock ", h("span", {}, "catalog")),
    h("nav", { class: "main" }, link("/ui/", "Catalog", "list"), link("store.html", "Store", "store"), h("a", { href: "/" }, "Endpoints")),
    who)));
}

// ---- list page -----------------------------------------------------------------

const KINDS = [["", "All"], ["model", "Models"], ["dataset", "Datasets"], ["project", "Python"], ["image", "Images"]];

function describe(item) {
  switch (item.kind) {
    case "model":
    case "dataset":
      return [item.files === null ? "no commits yet" : plural(item.files, "file"),
        item.private ? " · private" : "", item.gated ? " · gated" : ""].join("");
    case "project":
      return (item.latest_version ? "latest " + item.latest_version : "") +
        " · " + plural(item.versions, "version") +
        (item.index !== "default" ? " · index " + item.index : "");
    case "image":
      return plural(item.tags, "tag") +
        (item.tag_names.length ? ": " + item.tag_names.join(", ") + (item.tags > item.tag_names.length ? ", …" : "") : "");
    default:
      return "";
  }
}

async function listPage() {
  const params = new URLSearchParams(location.search);
  const state = { q: params.get("q") || "", kind: params.get("kind") || "" };
  const search = h("input", { type: "search", id: "search", placeholder: "Search models, datasets, Python projects and images", value: state.q, autofocus: true });
  const tabs = h("div", { class: "tabs", role: "tablist" });
  const results = h("div", { id: "results" });
  const main = document.querySelector("main");
  main.append(h("h1", {}, "Catalog"),
    h("p", { class: "sub" }, "Everything this Airlock serves, whichever protocol brought it."),
    h("div", { class: "search" }, search, tabs), results);

  const drawTabs = () => {
    tabs.replaceChildren(...KINDS.map(([kind, label]) => h("button", {
      class: state.kind === kind ? "active" : null, "data-kind": kind || "all", role: "tab",
      onclick: () => { state.kind = kind; drawTabs(); load(); },
    }, label)));
  };

  let generation = 0;
  const load = async (offset = 0, table = null) => {
    const mine = ++generation;
    const q = new URLSearchParams();
    if (state.q) q.set("q", state.q);
    if (state.kind) q.set("kind", state.kind);
    history.replaceState(null, "", "?" + q.toString());
    q.set("offset", offset);
    let page;
    try {
      page = await api("items?" + q.toString());
    } catch (err) {
      showProblem(results, err);
      return;
    }
    if (mine !== generation) return; // a newer search is on its way
    if (!table) {
      if (!page.items.length) {
        results.replaceChildren(h("div", { class: "panel empty" }, state.q ? "Nothing matches “" + state.q + "”." : "Nothing stored yet."));
        return;
      }
      table = h("tbody");
      results.replaceChildren(h("div", { class: "panel" }, h("table", { id: "items" },
        h("thead", {}, h("tr", {}, h("th", {}, "Kind"), h("th", {}, "Name"), h("th", {}, "Details"), h("th", { class: "num" }, "Size"), h("th", { class: "num" }, "Updated"))),
        table)));
    }
    for (const item of page.items) {
      table.append(h("tr", { "data-path": item.path },
        h("td", {}, badge(item.kind)),
        h("td", { class: "name" }, itemLink(item.path, item.name)),
        h("td", { class: "muted" }, describe(item)),
        h("td", { class: "num" }, item.size === undefined ? "–" : formatBytes(item.size)),
        h("td", { class: "num muted" }, formatDate(item.updated))));
    }
    results.querySelector(".more")?.remove();
    if (page.next_offset !== null) {
      results.append(h("div", { class: "more" }, h("button", { onclick: () => load(page.next_offset, table) }, "Show more")));
    }
  };

  let timer;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.q = search.value.trim(); load(); }, 200);
  });
  drawTabs();
  await load();
}

// ---- item page -----------------------------------------------------------------

function snippetsSection(snippets) {
  if (!snippets || !snippets.length) return null;
  return [h("h2", {}, "Use it"), h("div", { class: "snippets", id: "snippets" }, snippets.map((s) => {
    const button = h("button", { type: "button" }, "Copy");
    button.addEventListener("click", () => copyText(s.text, button));
    return h("div", { class: "snippet" }, h("div", { class: "head" }, s.title, button), h("pre", {}, s.text));
  }))];
}

function table(id, headers, rows) {
  return h("div", { class: "panel" }, h("table", { id },
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { class: x.endsWith(" ") ? "num" : null }, x.trim())))),
    h("tbody", {}, rows)));
}

function hfItem(item) {
  const chip = (ref, label) => {
    const current = item.revision.name === ref.name;
    const href = "item.html?item=" + encodeURIComponent(item.path) + "&revision=" + encodeURIComponent(ref.name);
    return h("a", { class: "chip" + (current ? " current" : ""), href, title: ref.commit }, ref.name, h("small", {}, label));
  };
  const refs = [...item.branches.map((b) => chip(b, "branch")), ...item.tags.map((t) => chip(t, "tag")), ...item.pull_requests.map((p) => chip(p, "pr"))];
  return [
    h("h2", {}, "Revisions"),
    h("div", { class: "chips", id: "revisions" }, refs),
    h("p", { class: "muted" }, "Showing ", h("strong", {}, item.revision.name), " at commit ",
      h("span", { class: "mono" }, item.revision.commit.slice(0, 12)), " — “" + item.revision.title + "”, " + formatDate(item.revision.date)),
    snippetsSection(item.snippets),
    h("h2", {}, "Files ", h("span", { class: "muted" }, "(" + item.file_count + ", " + formatBytes(item.size) + ")")),
    table("files", ["Path", "Size ", "sha256", "git oid", ""], item.files.map((f) => h("tr", {},
      h("td", { class: "name mono" }, f.path),
      h("td", { class: "num" }, formatBytes(f.size)),
      digestCell(f.sha256), digestCell(f.oid),
      h("td", {}, f.lfs ? h("span", { class: "badge flag" }, "lfs") : "")))),
    item.file_count > item.files.length
      ? h("p", { class: "muted", id: "files-more" }, "The first " + item.files.length + " of " + item.file_count +
        " files, by path. huggingface_hub's list_repo_tree(recursive=True) lists them all.")
      : "",
  ];
}

function projectItem(item) {
  return [
    snippetsSection(item.snippets),
    h("h2", {}, "Versions ", h("span", { class: "muted" }, "(" + item.versions.length + ", " + formatBytes(item.size) + ")")),
    table("files", ["Version", "File", "Kind", "Size ", "sha256", "Uploaded "], item.versions.flatMap((v) => v.files.map((f, i) => h("tr", {},
      h("td", {}, i === 0 ? h("strong", {}, v.version) : ""),
      h("td", { class: "name mono" }, h("a", { href: f.url }, f.filename), f.yanked !== null ? [" ", h("span", { class: "badge flag", title: f.yanked }, "yanked")] : ""),
      h("td", { class: "muted" }, f.kind),
      h("td", { class: "num" }, formatBytes(f.size)),
      digestCell(f.sha256),
      h("td", { class: "num muted" }, formatDate(f.upload_time)))))),
  ];
}

function platformText(p) {
  if (!p.platform) return shortDigest(p.digest);
  const x = p.platform;
  return [x.os, x.architecture, x.variant].filter(Boolean).join("/") + (p.stored ? "" : " (not stored)");
}

function imageItem(item) {
  return [
    snippetsSection(item.snippets),
    h("h2", {}, "Tags ", h("span", { class: "muted" }, "(" + item.tags.length + ")")),
    table("files", ["Tag", "Manifest digest", "Media type", "Platforms", "Size "], item.tags.map((t) => h("tr", {},
      h("td", { class: "name" }, t.tag),
      digestCell(t.digest),
      h("td", { class: "muted mono" }, t.media_type || "–"),
      h("td", {}, t.platforms ? t.platforms.map(platformText).join(", ") : "–"),
      h("td", { class: "num" }, formatBytes(t.size))))),
  ];
}

async function itemPage() {
  const params = new URLSearchParams(location.search);
  const path = params.get("item") || "";
  const revision = params.get("revision");
  const main = document.querySelector("main");
  let item;
  try {
    item = await api("items/" + path.split("/").map(encodeURIComponent).join("/") + (revision ? "?revision=" + encodeURIComponent(revision) : ""));
  } catch (err) {
    showProblem(main, err);
    return;
  }
  document.title = item.name + " · Airlock";
  const flags = [item.private ? h("span", { class: "badge flag" }, "private") : null, item.gated ? h("span", { class: "badge flag" }, "gated") : null];
  const subtitle = {
    model: "Hugging Face model", dataset: "Hugging Face dataset",
    project: "Python project in index “" + item.index + "”" + (item.latest_version ? ", latest " + item.latest_version : ""),
    image: "OCI image repository, " + (item.manifests) + " manifests",
  }[item.kind];
  const body = { model: hfItem, dataset: hfItem, project: projectItem, image: imageItem }[item.kind](item);
  const parts = [
    h("p", { class: "muted" }, h("a", { href: "/ui/" }, "Catalog"), " / ", item.kind),
    h("h1", { id: "item-name" }, badge(item.kind), " ", item.kind === "project" ? item.display_name : item.name, " ", flags),
    h("p", { class: "sub" }, subtitle),
    body,
  ];
  main.append(...parts.flat(Infinity).filter((p) => p !== null && p !== undefined));
}

// ---- store page ----------------------------------------------------------------

async function storePage() {
  const main = document.querySelector("main");
  let s;
  try {
    s = await api("store");
    // The first walk of a large store takes a while: say so, and ask again (bounded).
    for (let tries = 0; s.computing && tries < 120; tries++) {
      if (!tries) main.append(h("p", { class: "sub", id: "computing" }, "Computing the store's totals…"));
      await new Promise((done) => setTimeout(done, 1000));
      s = await api("store");
    }
    document.getElementById("computing")?.remove();
  } catch (err) {
    showProblem(main, err);
    return;
  }
  if (s.computing) {
    main.append(h("div", { class: "panel empty" }, "The store's totals are still being computed: reload this page in a minute."));
    return;
  }
  const card = (id, label, value, note) => h("div", { class: "card", id }, h("div", { class: "label" }, label), h("div", { class: "value" }, value), note ? h("div", { class: "note" }, note) : null);
  const items = s.items;
  main.append(
    h("h1", {}, "Store"),
    h("p", { class: "sub" }, "Every file is stored once, by digest, whichever protocol brought it. " +
      (s.scope === "store" ? "Figures for the whole store." : "Figures for the items your token can read.") +
      " Counted when the store was walked, " + formatDate(s.computed_at) + ", and kept up to date since (last change " + formatDate(s.updated_at) + ")."),
    h("div", { class: "cards" },
      card("objects", s.scope === "store" ? "Blobs stored" : "Blobs you can read", s.blobs.objects.toLocaleString(), formatBytes(s.blobs.bytes)),
      card("served", "Bytes as clients see them", formatBytes(s.referenced_bytes), "every item's files counted in full"),
      card("saved", "Saved by deduplication", formatBytes(s.dedup.saved_bytes), plural(s.dedup.shared_blobs, "blob") + " shared between items"),
      card("cross", "Shared across protocols", formatBytes(s.dedup.cross_protocol_saved_bytes), plural(s.dedup.cross_protocol_blobs, "blob") + " served by more than one protocol"),
      card("items", "Items", (items.models + items.datasets + items.projects + items.images).toLocaleString(),
        [plural(items.models, "model"), plural(items.datasets, "dataset"), plural(items.projects, "Python project"), plural(items.images, "image")].join(" · ")),
      s.gc ? card("reclaimable", "Reclaimable", formatBytes(s.gc.reclaimable_bytes),
        plural(s.gc.reclaimable_blobs, "blob") + " and " + plural(s.gc.reclaimable_xorbs, "xorb") + " nothing references, as of the last airlock gc " +
        formatDate(s.gc.finished_at) + (s.gc.dry_run ? " (dry run)" : "")) : null,
      s.gc && !s.gc.dry_run ? card("freed", "Freed by the last airlock gc", formatBytes(s.gc.removed_bytes + s.gc.evicted_bytes),
        plural(s.gc.removed_blobs, "blob") + " and " + plural(s.gc.removed_xorbs, "xorb") + " nothing referenced; " +
        plural(s.gc.evicted_blobs, "pull-through blob") + " evicted, of " + formatBytes(s.gc.pull_through_bytes) + " cached") : null),
    h("h2", {}, "Recently changed"),
    s.recent.length
      ? table("recent", ["Kind", "Name", "Changed "], s.recent.map((r) => h("tr", {},
          h("td", {}, badge(r.kind)), h("td", { class: "name" }, itemLink(r.path, r.name)), h("td", { class: "num muted" }, formatDate(r.changed_at)))))
      : h("div", { class: "panel empty" }, "Nothing yet."));
}

// ---- start ---------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  chrome(page);
  ({ list: listPage, item: itemPage, store: storePage })[page]();
});
