// Sluice console: live updates (server-sent events), no inline scripts anywhere.
(function () {
  "use strict";

  // Reviews inbox: a new pending review appears without a reload.
  function watchReviews() {
    const list = document.querySelector("[data-review-list]");
    const badge = document.querySelector("[data-pending-count]");
    if (!list && !badge) return;
    const source = new EventSource("/console/events");
    source.addEventListener("review", (event) => {
      const review = JSON.parse(event.data);
      if (badge) badge.textContent = String(review.pending);
      if (!list || document.getElementById("review-" + review.id)) return;
      const row = document.createElement("tr");
      row.id = "review-" + review.id;
      row.setAttribute("data-new", "true");
      const cells = [review.status, review.requester, review.connection, review.command, review.created_at];
      cells.forEach((text, index) => {
        const cell = document.createElement("td");
        if (index === 3) {
          const code = document.createElement("code");
          code.textContent = text;
          cell.appendChild(code);
        } else {
          cell.textContent = text;
        }
        row.appendChild(cell);
      });
      const open = document.createElement("td");
      const link = document.createElement("a");
      link.href = "/console/reviews/" + encodeURIComponent(review.id);
      link.textContent = "Open";
      open.appendChild(link);
      row.appendChild(open);
      list.prepend(row);
      const empty = document.querySelector("[data-review-empty]");
      if (empty) empty.remove();
    });
  }

  // An ongoing session, watched live: masked output as it is recorded.
  function watchSession() {
    const view = document.querySelector("[data-live]");
    if (!view) return;
    const screen = window.SluiceScreen ? new window.SluiceScreen(120, 30) : null;
    const plain = document.createElement("pre");
    const source = new EventSource(view.getAttribute("data-live"));
    source.addEventListener("output", (event) => {
      const data = JSON.parse(event.data);
      if (screen && data.terminal) {
        screen.write(data.text);
        screen.render(view);
      } else {
        plain.textContent += data.text;
        if (!plain.parentNode) view.replaceChildren(plain);
        view.scrollTop = view.scrollHeight;
      }
    });
    source.addEventListener("end", () => {
      source.close();
      view.setAttribute("data-ended", "true");
    });
  }

  // Buttons that need a confirmation say so in data-confirm.
  function confirmations() {
    document.querySelectorAll("form[data-confirm]").forEach((form) => {
      form.addEventListener("submit", (event) => {
        if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    watchReviews();
    watchSession();
    confirmations();
  });
})();
