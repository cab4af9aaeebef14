// amber review console: reveal-on-click media, re-blur on leaving, shortcuts, time left.
"use strict";
(function () {
  const csrf = (document.querySelector('meta[name="csrf"]') || {}).content || "";

  // -- wellness: reveal one figure at a time; blur again when pointer or focus leaves --
  function reblur(figure) {
    if (figure.dataset.blur === "1") figure.classList.add("blurred");
  }
  function reblurAll() {
    document.querySelectorAll("figure.media").forEach(reblur);
  }
  function reveal(figure) {
    if (!figure.classList.contains("blurred")) return;
    figure.classList.remove("blurred");
    const body = new URLSearchParams({ csrf: csrf });
    fetch(figure.dataset.reveal, { method: "POST", body: body, credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : null))
      .then((data) => {
        const seen = document.getElementById("seen-today");
        if (data && seen) seen.textContent = String(data.seen_today);
      });
  }
  document.querySelectorAll("figure.media").forEach((figure) => {
    figure.addEventListener("click", (event) => {
      if (figure.classList.contains("blurred")) event.preventDefault();
      reveal(figure);
    });
    figure.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); reveal(figure); }
    });
    figure.addEventListener("mouseleave", () => reblur(figure));
    figure.addEventListener("blur", () => reblur(figure));
    figure.querySelectorAll("video").forEach((video) => { video.muted = true; video.autoplay = false; });
  });
  document.addEventListener("visibilitychange", () => { if (document.hidden) reblurAll(); });
  window.addEventListener("blur", reblurAll);

  // -- keyboard shortcuts for the decision --
  const keys = { r: "remove", k: "keep_restricted", x: "reject", e: "escalate" };
  const form = document.getElementById("decision");
  const reason = document.getElementById("reason");
  let pending = null;
  function choose(choice) {
    const button = form.querySelector('button[name="choice"][value="' + choice + '"]');
    if (!button) return;
    if (!reason.value.trim()) {
      form.querySelectorAll("button.chosen").forEach((b) => b.classList.remove("chosen"));
      button.classList.add("chosen");
      pending = button;
      reason.focus();
      return;
    }
    form.requestSubmit(button);
  }
  if (form && reason) {
    document.addEventListener("keydown", (event) => {
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      if (event.target.closest("input, textarea, select")) return;
      const choice = keys[event.key];
      if (!choice) return;
      event.preventDefault();
      choose(choice);
    });
    reason.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && pending) {
        event.preventDefault();
        form.requestSubmit(pending);
      }
    });
  }

  // -- time left, refreshed every 30 s --
  function tick() {
    const now = Date.now();
    document.querySelectorAll("[data-deadline]").forEach((cell) => {
      const seconds = (Date.parse(cell.dataset.deadline) - now) / 1000;
      const minutes = Math.floor(Math.abs(seconds) / 60);
      let span = minutes < 120 ? minutes + " min" : Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
      if (minutes >= 48 * 60) span = Math.floor(minutes / 1440) + " days";
      cell.textContent = seconds >= 0 ? span + " left" : "overdue by " + span;
      cell.classList.toggle("overdue", seconds < 0);
    });
  }
  setInterval(tick, 30000);
})();
