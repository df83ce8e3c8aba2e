// One player per page for the "Play" buttons (tracks on search, album and artist pages).
"use strict";
(function () {
  const box = document.getElementById("now-playing");
  const player = document.getElementById("player");
  const title = document.getElementById("now-playing-title");
  if (!box || !player) return;
  document.addEventListener("click", function (ev) {
    const button = ev.target instanceof Element ? ev.target.closest("button.play") : null;
    if (!button) return;
    const src = button.getAttribute("data-src") || "";
    if (!src.startsWith("/tracks/")) return; // only our own audio URLs
    box.hidden = false;
    title.textContent = "Playing: " + (button.getAttribute("data-title") || "");
    if (player.getAttribute("src") !== src) player.src = src;
    const started = player.play();
    if (started && started.catch) started.catch(function () { title.textContent = "Could not play this file."; });
  });
})();
