// The movierec dashboard: plain JavaScript, no library, charts drawn as SVG.
// It reads /dashboard/api/* (admin only) and the public API with the admin token kept in sessionStorage.
"use strict";

const TOKEN_KEY = "movierec.token";
const SVG_NS = "http://www.w3.org/2000/svg";
const PAGES = ["index", "movies", "map", "users", "quality", "service"];
const VECTORS = ["text", "image", "combined", "collab"];
const STRATEGIES = ["content", "collab", "hybrid"];
const SERVICE_EVERY_MS = 2000;
const RATINGS_PAGE = 50;
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d",
  "#31a354", "#756bb1", "#636363"];

const $ = (id) => document.getElementById(id);

// -- small DOM helpers: text goes in as text, never as HTML ------------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "onclick") node.addEventListener("click", v);
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function fill(target, ...children) {
  const node = typeof target === "string" ? $(target) : target;
  node.replaceChildren(...children.flat());
  return node;
}

function table(target, headers, rows) {
  const head = el("tr", {}, headers.map((h) => el("th", {}, h)));
  const body = rows.map((r) => el("tr", {}, r.map((c) => (c instanceof Node ? el("td", {}, c) :
    el("td", typeof c === "number" ? { class: "num" } : {}, c)))));
  return fill(target, head, ...body);
}

function card(label, value, id) {
  return el("div", { class: "card" }, el("div", { class: "label" }, label),
    el("div", id ? { class: "value", id } : { class: "value" }, value));
}

const fmt = (x, digits = 4) => (typeof x === "number" ? Number(x.toFixed(digits)) : x ?? "—");

// -- the API ----------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, detail) { super(status ? `${status}: ${detail}` : detail); this.status = status; this.detail = detail; }
}

async function api(path) {
  let response;
  try {
    response = await fetch(path, { headers: { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY)}` } });
  } catch {  // no answer at all (the browser says only "Failed to fetch")
    throw new ApiError(0, `the server did not answer ${path.split("?")[0]} (is \`movierec serve\` running?); try again`);
  }
  const body = await response.json().catch(() => ({}));
  if (response.status === 401 && sessionStorage.getItem(TOKEN_KEY)) loggedOut(body.detail || "the token was refused");
  if (!response.ok) throw new ApiError(response.status, body.detail || response.statusText);
  return body;
}

// A token that stops working (expired, revoked, a new key) logs the page out, saying why, rather than
// leaving every section to show a 401 (and the Service page to ask again every few seconds).
function loggedOut(why) {
  forgetSession();
  route();
  $("login-error").textContent = why;
}

// Log out, or a token refused: the token and everything the session showed go, so that the page left
// on the screen holds neither (answers still on their way are dropped as well).
function forgetSession() {
  sessionStorage.removeItem(TOKEN_KEY);
  stopService();
  for (const section of Object.keys(turns)) nextTurn(section);
  for (const form of document.querySelectorAll("main form")) form.reset();
  for (const node of document.querySelectorAll("main .page:not(#login) [id]")) {
    if (!node.closest("form")) node.replaceChildren();
  }
  delete $("movie-detail").dataset.movieId;
  delete $("user-recs").dataset.userId;
}

// Each section draws only its latest request's answer: a slow answer to an earlier query (another
// user, another movie) arriving last must not replace the later one, nor mix with it.
const turns = {};
function nextTurn(section) {
  const turn = (turns[section] = (turns[section] || 0) + 1);
  return () => turns[section] === turn;
}

function showError(target, err) {
  fill(target, el("p", { class: "error" }, err.message || String(err)));
}

// A section's request: `request()`'s answer while it is still the section's latest (`current()`),
// else null; a failure is shown in `target` (if still current) and is null too.
async function latest(current, target, request) {
  try {
    const answer = await request();
    return current() ? answer : null;
  } catch (err) {
    if (current()) showError(target, err);
    return null;
  }
}

// -- login and navigation ---------------------------------------------------------------------
async function login(token) {
  if (!token.trim()) { $("login-error").textContent = "paste a token first (the box holds only blanks)"; return; }
  sessionStorage.setItem(TOKEN_KEY, token.trim());
  try {
    await api("/dashboard/api/index");
  } catch (err) {
    sessionStorage.removeItem(TOKEN_KEY);
    const why = err.status === 403 ? "this token is not an admin token" : err.status === 401 ? err.detail : err.message;
    $("login-error").textContent = why;
    return;
  }
  $("login-error").textContent = "";
  $("token").value = "";  // kept in sessionStorage only, not on the page
  route();
}

function route() {
  const loggedIn = Boolean(sessionStorage.getItem(TOKEN_KEY));
  $("login").hidden = loggedIn;
  $("nav").hidden = !loggedIn;
  // #page, or #movies/ID and #users/ID: the movie or user shown, so Back, Forward and a reload keep it.
  const [name, arg] = location.hash.slice(1).split("/");
  const page = PAGES.includes(name) ? name : "index";
  for (const name of PAGES) $(`page-${name}`).hidden = !loggedIn || name !== page;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.hash === `#${page}`);
  if (page !== "service") stopService();
  if (loggedIn) LOADERS[page](/^\d+$/.test(arg || "") ? arg : null);
}

// The address says what is shown (a new history entry: Back returns to the one before).
function remember(page, id) {
  if (location.hash !== `#${page}/${id}`) history.pushState(null, "", `#${page}/${id}`);
}

// -- Index ------------------------------------------------------------------------------------
async function loadIndex() {
  const data = await latest(nextTurn("index"), "index-cards", () => api("/dashboard/api/index"));
  if (data === null) return;
  fill("index-cards",
    card("generation", data.generation ?? "none", "index-generation"),
    card("engine", data.engine),
    card("points", data.points, "index-points"),
    card("coverage", fmt(data.coverage.coverage)),
    card("poster coverage", fmt(data.coverage.poster_coverage)));
  table("index-vectors", ["name", "dim", "distance"], data.vectors.map((v) => [v.name, v.dim ?? "—", v.distance]));
  table("index-fields", ["field", "indexed", "index type"],
    data.payload_fields.map((f) => [f.name, f.indexed ? "yes" : "no", f.index_type ?? ""]));
  const c = data.coverage;
  table("index-coverage", ["what", "value"], [
    ["movies in the database", c.total_movies], ["movies in the index", c.movies_in_index],
    ["coverage", fmt(c.coverage)], ["with a poster source", c.movies_with_poster_source],
    ["with an image vector", c.movies_with_image_vector], ["poster coverage", fmt(c.poster_coverage)],
    ["serving device", c.device], ["2-D maps (points)", Object.entries(data.maps).map(([k, v]) => `${k}: ${v}`).join(", ")]]);
  const stats = data.manifest.stats || {};
  const sources = data.collab_sources || (stats.collab_vectors !== undefined ? { ratings: stats.collab_vectors } : {});
  table("index-collab", ["source", "movies"], Object.entries(sources).map(([k, v]) => [k, v]));
  $("index-manifest").textContent = JSON.stringify(data.manifest, null, 2);
}

// -- Movies -----------------------------------------------------------------------------------
async function lookUpMovie(query) {
  query = query.trim();  // blanks pass the input's `required`: no request for them
  const current = nextTurn("movie");
  fill("movie-matches"); fill("movie-detail"); fill("movie-neighbours");
  if (!query) return fill("movie-matches", el("p", {}, "type a title or a movie id"));
  if (/^\d+$/.test(query)) return showMovie(BigInt(query).toString());  // exact: ids reach 10^18 - 1
  const found = await latest(current, "movie-matches",
    () => api(`/movies/search?q=${encodeURIComponent(query)}&limit=8`));
  if (found === null) return;
  if (!found.items.length) return fill("movie-matches", el("p", {}, "no match"));
  fill("movie-matches", el("p", {}, "Matches: ", ...found.items.map((m) =>
    el("a", { href: "#movies", class: "clickable", onclick: (e) => { e.preventDefault(); showMovie(m.movie_id); } },
      `${m.title} (${m.year ?? "?"})  `))));
  return showMovie(found.items[0].movie_id);
}

async function showMovie(id) {
  const current = nextTurn("movie");
  const answers = await latest(current, "movie-detail",
    () => Promise.all([api(`/dashboard/api/movies/${id}`), api(`/movies/${id}`)]));
  if (answers === null) {
    if (current()) delete $("movie-detail").dataset.movieId;  // failed: the address may ask for it again
    return;
  }
  const [view, movie] = answers;
  const poster = movie.poster_url ? el("img", { class: "poster", src: movie.poster_url, alt: "poster" }) : "";
  const norms = VECTORS.map((n) => [n, view.norms[n] === undefined ? "absent" : fmt(view.norms[n], 6)]);
  const detail = fill("movie-detail", poster,
    el("h3", { id: "movie-title" }, `${movie.title} (${movie.year ?? "?"}) — id ${id}`),
    el("p", {}, movie.overview || ""), el("div", { class: "cols" },
      el("div", {}, el("h3", {}, "Payload"), el("pre", {}, JSON.stringify(view.payload, null, 2))),
      el("div", {}, el("h3", {}, "Vector norms"), table(el("table"), ["vector", "L2 norm"], norms))));
  detail.dataset.movieId = id;
  remember("movies", id);
  fill("movie-neighbours", VECTORS.map((name) => {
    const list = view.neighbours[name];
    const body = list === null ? el("p", { class: "note" }, `no ${name} vector`) :
      el("ol", { class: "neighbours", "data-vector": name }, list.map((n) =>
        el("li", { class: "clickable", onclick: () => showMovie(n.movie_id) }, `${n.title} (${n.year ?? "?"}) `,
          el("span", { class: "note" }, fmt(n.score, 3)))));
    return el("div", {}, el("h3", {}, `nearest by ${name}`), body);
  }));
}

// -- Map --------------------------------------------------------------------------------------
async function loadMap() {
  const maps = await latest(nextTurn("map"), "map-combined",
    () => Promise.all(["combined", "collab"].map((space) => api(`/dashboard/api/map/${space}`))));
  if (maps === null) return;
  const counts = new Map();
  for (const m of maps) for (const p of m.points) counts.set(p[4], (counts.get(p[4]) || 0) + 1);
  const genres = [...counts.keys()].sort((a, b) => counts.get(b) - counts.get(a));
  const colour = (g) => PALETTE[genres.indexOf(g) % PALETTE.length];
  for (const m of maps) drawMap(`map-${m.space}`, m, colour);
  fill("map-legend", genres.slice(0, PALETTE.length).map((g) => el("span", {},
    el("i", { style: `background:${colour(g)}` }), g)));
}

function drawMap(target, map, colour) {
  const size = 500, pad = 10, half = (size - 2 * pad) / 2;
  const plot = svg("svg", { viewBox: `0 0 ${size} ${size}`, "data-space": map.space, "data-points": map.points.length });
  for (const [id, x, y, title, genre] of map.points) {
    plot.append(svg("circle", { cx: (pad + half + x * half).toFixed(1), cy: (pad + half - y * half).toFixed(1), r: 2.5,
      fill: colour(genre), "fill-opacity": 0.75, "data-id": id }, svg("title", {}, `${title} — ${genre}`)));
  }
  const variance = (map.explained_variance || []).map((v) => `${(100 * v).toFixed(1)}%`).join(" + ");
  fill(target, plot, el("p", { class: "note" }, `${map.points.length} movies; variance explained ${variance}`));
}

// -- Users ------------------------------------------------------------------------------------
async function showUser(userId) {
  const current = nextTurn("user");
  nextTurn("explain"); nextTurn("ratings");  // an explanation or a page still on its way is the previous user's
  fill("user-explain"); fill("user-ratings"); fill("user-recs");
  delete $("user-recs").dataset.userId;
  // Not digits: said here, as the API's query parameter would say it (in the path, a slash would make
  // another route, answered with a bare 404).
  if (!/^\d+$/.test(userId)) {
    return showError("user-ratings", `user_id must be an integer from 1 to 999999999999999999 (10^18 - 1), got '${userId}'`);
  }
  const user = encodeURIComponent(userId);  // typed by hand: never part of the path or query as is
  const [ratings, ...lists] = await Promise.all([api(`/users/${user}/ratings?limit=${RATINGS_PAGE}`).catch((err) => err),
    ...STRATEGIES.map((s) => api(`/movies/recommendations?user_id=${user}&strategy=${s}&limit=10`).catch((err) => err))]);
  if (!current()) return;
  if (ratings instanceof Error) showError("user-ratings", ratings);
  else drawRatings(user, ratings);
  $("user-recs").dataset.userId = userId;
  remember("users", userId);
  fill("user-recs", lists.map((list, i) => {
    if (list instanceof Error) return el("div", {}, el("h3", {}, STRATEGIES[i]), el("p", { class: "error" }, list.message));
    return el("div", {}, el("h3", {}, `${STRATEGIES[i]} `, el("span", { class: "path" }, `path: ${list.path}`)),
      el("ol", { class: "recs", "data-strategy": STRATEGIES[i] }, list.items.map((m) =>
        el("li", { class: "clickable", title: m.reason, onclick: () => explain(user, m.movie_id, STRATEGIES[i]) },
          `${m.title} (${m.year ?? "?"}) `, el("span", { class: "note" }, fmt(m.score, 3))))));
  }));
}

// A user's ratings, latest first, a page at a time: a user may have thousands.
async function showRatings(user, offset) {
  const ratings = await latest(nextTurn("ratings"), "user-ratings",
    () => api(`/users/${user}/ratings?limit=${RATINGS_PAGE}&offset=${offset}`));
  if (ratings !== null) drawRatings(user, ratings);
}

function drawRatings(user, ratings) {
  const start = ratings.offset, end = ratings.offset + ratings.items.length;
  const page = (id, label, offset) => el("button", { type: "button", id, onclick: () => showRatings(user, offset) }, label);
  table("user-ratings", ["movie", "rating"], ratings.items.map((r) => [r.title, r.rating]));
  $("user-ratings").prepend(el("caption", {},
    `${ratings.total} ratings${end > start ? `, ${start + 1}–${end} (latest first)` : ""} `,
    start > 0 ? page("ratings-newer", "« newer", Math.max(0, start - RATINGS_PAGE)) : "",
    end < ratings.total ? page("ratings-older", "older »", end) : ""));
}

// The explanation of a list's item under that list's strategy: its sentence starts with the item's own reason.
async function explain(user, movieId, strategy) {
  const why = await latest(nextTurn("explain"), "user-explain",
    () => api(`/movies/explain/${user}/${movieId}?strategy=${strategy}`));
  if (why === null) return;
  fill("user-explain", el("h3", {}, `Why ${why.title}? (${strategy} list)`),
    el("p", { id: "explain-sentence", "data-strategy": strategy }, why.sentence),
    why.related.length ? table(el("table"), ["closest rated movie", "rating", "similarity"],
      why.related.map((r) => [r.title, r.rating, fmt(r.similarity, 3)])) : "");
}

// -- Quality ----------------------------------------------------------------------------------
async function loadQuality() {
  const data = await latest(nextTurn("quality"), "quality-chart", () => api("/dashboard/api/quality"));
  if (data === null) return;
  const report = data.report;
  if (!report) { $("quality-meta").textContent = data.hint; return fill("quality-chart"); }
  const saved = report.saved_at ? new Date(report.saved_at * 1000).toISOString() : "?";
  $("quality-meta").textContent = `${report.dataset}, ${report.protocol}, k=${report.k}; saved ${saved}`;
  // Slices: every list of rows in the report that carries NDCG (all users, the cold-start users, ...).
  const slices = Object.entries(report).filter(([k, v]) => k.endsWith("rows") && Array.isArray(v) &&
    v.some((r) => typeof r.ndcg === "number"));
  fill("quality-chart", barChart(slices.map(([k, rows]) => [k === "rows" ? "all users" : k.replace(/_rows$/, "").replaceAll("_", " "),
    Object.fromEntries(rows.filter((r) => typeof r.ndcg === "number").map((r) => [r.strategy, r.ndcg]))]), `NDCG@${report.k}`));
}

function barChart(series, label) {
  const strategies = [...new Set(series.flatMap(([, values]) => Object.keys(values)))];
  const max = Math.max(1e-9, ...series.flatMap(([, values]) => Object.values(values)));
  const barW = 18, gap = 24, left = 50, top = 20, height = 260;
  const width = left + strategies.length * (series.length * barW + gap) + 20;
  const chart = svg("svg", { width, height: height + 90, viewBox: `0 0 ${width} ${height + 90}`, class: "bars" });
  chart.append(svg("text", { x: 4, y: 14 }, label));
  for (let t = 0; t <= 4; t++) {
    const y = top + height - (t / 4) * height;
    chart.append(svg("line", { x1: left - 4, x2: width, y1: y, y2: y, stroke: "#e3e6ea" }));
    chart.append(svg("text", { x: 4, y: y + 4, "font-size": 11 }, ((t / 4) * max).toFixed(3)));
  }
  strategies.forEach((s, i) => {
    const x0 = left + i * (series.length * barW + gap);
    series.forEach(([slice, values], j) => {
      if (values[s] === undefined) return;
      const h = (values[s] / max) * height;
      chart.append(svg("rect", { x: x0 + j * barW, y: top + height - h, width: barW - 2, height: h, fill: PALETTE[j],
        "data-strategy": s, "data-slice": slice }, svg("title", {}, `${s}, ${slice}: ${values[s]}`)));
    });
    chart.append(svg("text", { x: x0, y: top + height + 16, "font-size": 12 }, s));
  });
  series.forEach(([slice], j) => {
    chart.append(svg("rect", { x: left + j * 140, y: top + height + 40, width: 10, height: 10, fill: PALETTE[j] }));
    chart.append(svg("text", { x: left + j * 140 + 14, y: top + height + 50, "font-size": 12 }, slice));
  });
  return chart;
}

// -- Service ----------------------------------------------------------------------------------
// The server keeps a snapshot of every worker's request histograms every few seconds over the last
// five minutes; this page asks for them again every SERVICE_EVERY_MS and shows differences.
let serviceTimer = null;
let samples = [];

function stopService() {
  if (serviceTimer !== null) clearInterval(serviceTimer);
  serviceTimer = null;
}

function loadService() {
  stopService();
  sampleService();
  serviceTimer = setInterval(sampleService, SERVICE_EVERY_MS);
}

const routeKey = (r) => `${r.method} ${r.route}`;
const totalCount = (sample) => sample.routes.reduce((a, r) => a + r.count, 0);

async function sampleService() {
  // Drawn while the page is on (not after leaving it or logging out); every sample is drawn, a slow one too.
  const data = await latest(() => serviceTimer !== null, "service-cards", () => api("/dashboard/api/service"));
  if (data === null) return;
  samples = data.samples;
  const first = samples[0], last = samples[samples.length - 1];
  const seconds = last.t - first.t;
  const before = new Map(first.routes.map((r) => [routeKey(r), r]));
  const rows = last.routes.map((r) => {
    const old = before.get(routeKey(r));
    const n = r.count - (old ? old.count : 0);
    const buckets = r.buckets.map(([le, c], i) => [le === null ? Infinity : le, c - (old ? old.buckets[i][1] : 0)]);
    return [routeKey(r), seconds > 0 ? fmt(n / seconds, 2) : "…", n,
      quantileMs(buckets, 0.5), quantileMs(buckets, 0.99), r.count];
  });
  const rate = seconds > 0 ? fmt((totalCount(last) - totalCount(first)) / seconds, 2) : "…";
  fill("service-cards", card("workers", last.workers, "service-workers"), card("requests/s", rate),
    card("window", `${Math.round(seconds)} s`));
  table("service-routes", ["route", "req/s", "requests in window", "p50 ms", "p99 ms", "total"], rows);
  drawSpark();
}

// The q-quantile of a cumulative histogram, interpolated linearly inside its bucket as Prometheus's
// histogram_quantile() does; buckets = [[upper bound s, cumulative count], ...] ending with +Inf.
function quantileMs(buckets, q) {
  const total = buckets[buckets.length - 1][1];
  if (total <= 0) return "—";
  const rank = q * total;
  let lower = 0, below = 0;
  for (const [le, count] of buckets) {
    if (count >= rank) {
      if (le === Infinity) return `> ${lower * 1000}`;
      const inside = count - below;
      return fmt((lower + (le - lower) * (inside > 0 ? (rank - below) / inside : 1)) * 1000, 1);
    }
    lower = le; below = count;
  }
  return "—";
}

function drawSpark() {
  const rates = [];
  for (let i = 1; i < samples.length; i++) {
    const dt = samples[i].t - samples[i - 1].t;
    if (dt > 0) rates.push((totalCount(samples[i]) - totalCount(samples[i - 1])) / dt);
  }
  const w = 600, h = 80, max = Math.max(1, ...rates);
  const points = rates.map((r, i) => `${(i / Math.max(1, rates.length - 1)) * w},${h - (r / max) * (h - 4)}`);
  fill("service-spark", svg("svg", { width: w, height: h + 16, viewBox: `0 0 ${w} ${h + 16}` },
    svg("polyline", { points: points.join(" "), fill: "none", stroke: PALETTE[0], "stroke-width": 2 }),
    svg("text", { x: 0, y: h + 14, "font-size": 11 }, `requests/s, all routes (max ${max.toFixed(1)})`)));
}

// -- wiring -----------------------------------------------------------------------------------
// Movies and Users load what the address names, unless it is already shown.
function movieFromAddress(id) {
  if (id === null || $("movie-detail").dataset.movieId === id) return;
  $("movie-query").value = id;
  fill("movie-matches");
  showMovie(id);
}

function userFromAddress(id) {
  if (id === null || $("user-recs").dataset.userId === id) return;
  $("user-id").value = id;
  showUser(id);
}

const LOADERS = { index: loadIndex, movies: movieFromAddress, map: loadMap, users: userFromAddress,
  quality: loadQuality, service: loadService };

$("login-form").addEventListener("submit", (e) => { e.preventDefault(); login($("token").value); });
$("logout").addEventListener("click", () => { forgetSession(); route(); });
$("movie-form").addEventListener("submit", (e) => { e.preventDefault(); lookUpMovie($("movie-query").value.trim()); });
$("user-form").addEventListener("submit", (e) => { e.preventDefault(); showUser($("user-id").value.trim()); });
window.addEventListener("hashchange", route);
route();
