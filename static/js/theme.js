// Light or dark theme, chosen before the first paint (a classic script loaded at the top of <head>,
// since the Content-Security-Policy forbids inline scripts): the choice kept in localStorage, else
// the system's prefers-color-scheme (followed live while no choice is kept). The top bar's button
// switches and remembers.
(() => {
  const KEY = "dicomviewer-theme";
  const root = document.documentElement;
  const system = window.matchMedia("(prefers-color-scheme: dark)");

  function stored() {
    try {
      const value = localStorage.getItem(KEY);
      return value === "dark" || value === "light" ? value : null;
    } catch {
      return null; // storage disabled: follow the system
    }
  }

  function current() {
    return stored() || (system.matches ? "dark" : "light");
  }

  function apply(theme) {
    root.dataset.theme = theme;
    const button = document.getElementById("theme-toggle");
    if (!button) return;
    const dark = theme === "dark";
    button.setAttribute("aria-pressed", String(dark));
    button.title = dark ? "Dark theme (click for light)" : "Light theme (click for dark)";
  }

  apply(current());
  system.addEventListener("change", () => apply(current()));
  window.addEventListener("storage", (event) => event.key === KEY && apply(current()));
  document.addEventListener("DOMContentLoaded", () => {
    const button = document.getElementById("theme-toggle");
    apply(current());
    if (!button) return;
    button.addEventListener("click", () => {
      const next = current() === "dark" ? "light" : "dark";
      try {
        localStorage.setItem(KEY, next);
      } catch {
        // not remembered, but still switched for this page
      }
      apply(next);
    });
  });
})();
