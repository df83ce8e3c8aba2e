// Results as you type: calls /api/search and renders with textContent (never innerHTML).
"use strict";
(function () {
  const PAGE = 20;
  const input = document.getElementById("q");
  const list = document.getElementById("results");
  const status = document.getElementById("status");
  const pager = document.getElementById("pager");
  if (!input || !list) return;
  let timer = null;
  let seq = 0;

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function bdi(text) { return el("bdi", null, text); }
  function duration(ms) {
    if (typeof ms !== "number") return "–";
    const s = Math.floor(ms / 1000);
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }
  function idPath(prefix, id) {
    // ids are decimal strings from the API; anything else is not linked
    return /^[0-9]{1,19}$/.test(String(id)) ? prefix + id : null;
  }
  function link(href, cls, text) {
    const a = el("a", cls);
    if (href) a.href = href;
    a.appendChild(bdi(text));
    return a;
  }
  function pageLink(id, label, q, page) {
    const a = el("a", null, label);
    a.id = id;
    a.href = "/search?" + new URLSearchParams({ q: q, page: String(page) }).toString();
    a.addEventListener("click", function (ev) { ev.preventDefault(); run(q, page); });
    return a;
  }

  function render(q, page, data) {
    list.replaceChildren();
    for (const h of data.hits) {
      const li = el("li");
      li.appendChild(link(idPath("/tracks/", h.id), "title", h.title));
      li.appendChild(document.createTextNode(" "));
      const artists = el("span", "artists");
      artists.appendChild(bdi(h.artists));
      li.appendChild(artists);
      li.appendChild(document.createTextNode(" "));
      const albumHref = idPath("/albums/", h.album_id);
      if (albumHref) li.appendChild(link(albumHref, "album", h.album));
      li.appendChild(el("span", "meta", " " + duration(h.duration_ms) + " · popularity " + h.popularity +
        (h.held ? " · held" : "")));
      if (typeof h.audio_url === "string" && h.audio_url.startsWith("/tracks/")) {
        const play = el("button", "play", "▶");
        play.type = "button";
        play.setAttribute("data-src", h.audio_url);
        play.setAttribute("data-title", h.title);
        play.setAttribute("aria-label", "Play " + h.title);
        play.appendChild(el("span", "label", " Play"));
        li.appendChild(document.createTextNode(" "));
        li.appendChild(play);
      }
      list.appendChild(li);
    }
    if (data.total === 0) {
      status.textContent = "No tracks match.";
    } else {
      status.textContent = (data.offset + 1) + "–" + (data.offset + data.hits.length) + " of " +
        (data.total_exact === false ? "at least " : "") + data.total + (data.mode === "id" ? " (exact identifier match)" : "");
    }
    pager.replaceChildren();
    const pages = Math.ceil(data.total / PAGE);
    if (page > 1) pager.appendChild(pageLink("prev", "← Previous", q, page - 1));
    if (page < pages && page * PAGE < 10000) pager.appendChild(pageLink("next", "Next →", q, page + 1));
  }

  async function run(q, page) {
    const mine = ++seq;
    const url = new URL(window.location.href);
    if (!q.trim()) {
      list.replaceChildren(); pager.replaceChildren(); status.textContent = "";
      url.search = "";
      history.replaceState(null, "", url);
      return;
    }
    url.search = new URLSearchParams({ q: q, page: String(page) }).toString();
    history.replaceState(null, "", url);
    const params = new URLSearchParams({ q: q, limit: String(PAGE), offset: String((page - 1) * PAGE) });
    try {
      const resp = await fetch("/api/search?" + params.toString(), { headers: { accept: "application/json" } });
      const data = await resp.json();
      if (mine !== seq) return; // a newer query is on its way
      if (!resp.ok) {
        list.replaceChildren(); pager.replaceChildren();
        status.textContent = data && data.error ? String(data.error) : "Search failed.";
        return;
      }
      render(q, page, data);
    } catch (err) {
      if (mine === seq) status.textContent = "Search failed.";
    }
  }

  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () { run(input.value, 1); }, 120);
  });
})();
