// Copy buttons for magnet links.
"use strict";
(function () {
  for (const button of document.querySelectorAll("button.copy")) {
    button.addEventListener("click", async function () {
      const input = button.parentElement.querySelector("input.magnet-link");
      if (!input) return;
      input.select();
      try {
        await navigator.clipboard.writeText(input.value);
      } catch (err) {
        document.execCommand("copy");
      }
      button.textContent = "Copied";
    });
  }
})();
