// Sluice console: a terminal replay player for asciicast v2 events (masked output only).
// A small terminal emulator: printable text, CR/LF/BS/TAB, CSI cursor moves (A B C D G H f),
// erase (J K), SGR colours (16 + 256 + truecolour, bold, underline, inverse, reset), the
// alternate screen is treated as the main one. Play, pause, seek and speed; no inline script.
(function () {
  "use strict";

  const PALETTE = ["#000000", "#cd3131", "#0dbc79", "#e5e510", "#2472c8", "#bc3fbc", "#11a8cd", "#e5e5e5",
                   "#666666", "#f14c4c", "#23d18b", "#f5f543", "#3b8eea", "#d670d6", "#29b8db", "#ffffff"];

  function color256(n) {
    if (n < 16) return PALETTE[n];
    if (n < 232) {
      n -= 16;
      const level = (v) => (v === 0 ? 0 : 55 + v * 40);
      return "rgb(" + level(Math.floor(n / 36)) + "," + level(Math.floor(n / 6) % 6) + "," + level(n % 6) + ")";
    }
    const gray = 8 + (n - 232) * 10;
    return "rgb(" + gray + "," + gray + "," + gray + ")";
  }

  class Screen {
    constructor(cols, rows) {
      this.cols = cols;
      this.rows = rows;
      this.reset();
    }

    reset() {
      this.grid = [];
      for (let r = 0; r < this.rows; r++) this.grid.push(this.blankLine());
      this.x = 0;
      this.y = 0;
      this.style = {};
      this.pending = "";
    }

    blankLine() {
      const line = [];
      for (let c = 0; c < this.cols; c++) line.push({ ch: " ", st: null });
      return line;
    }

    scroll() {
      this.grid.shift();
      this.grid.push(this.blankLine());
    }

    newline() {
      this.y++;
      if (this.y >= this.rows) {
        this.scroll();
        this.y = this.rows - 1;
      }
    }

    put(ch) {
      if (this.x >= this.cols) {
        this.x = 0;
        this.newline();
      }
      this.grid[this.y][this.x] = { ch: ch, st: Object.keys(this.style).length ? Object.assign({}, this.style) : null };
      this.x++;
    }

    sgr(params) {
      if (params.length === 0) params = [0];
      for (let i = 0; i < params.length; i++) {
        const p = params[i];
        if (p === 0) this.style = {};
        else if (p === 1) this.style.bold = true;
        else if (p === 4) this.style.underline = true;
        else if (p === 7) this.style.inverse = true;
        else if (p === 22) delete this.style.bold;
        else if (p === 24) delete this.style.underline;
        else if (p === 27) delete this.style.inverse;
        else if (p >= 30 && p <= 37) this.style.fg = PALETTE[p - 30];
        else if (p >= 90 && p <= 97) this.style.fg = PALETTE[p - 90 + 8];
        else if (p === 39) delete this.style.fg;
        else if (p >= 40 && p <= 47) this.style.bg = PALETTE[p - 40];
        else if (p >= 100 && p <= 107) this.style.bg = PALETTE[p - 100 + 8];
        else if (p === 49) delete this.style.bg;
        else if ((p === 38 || p === 48) && params[i + 1] === 5) {
          this.style[p === 38 ? "fg" : "bg"] = color256(params[i + 2] || 0);
          i += 2;
        } else if ((p === 38 || p === 48) && params[i + 1] === 2) {
          this.style[p === 38 ? "fg" : "bg"] = "rgb(" + (params[i + 2] || 0) + "," + (params[i + 3] || 0) + "," + (params[i + 4] || 0) + ")";
          i += 4;
        }
      }
    }

    csi(params, final) {
      const n = params[0] || 1;
      switch (final) {
        case "A": this.y = Math.max(0, this.y - n); break;
        case "B": this.y = Math.min(this.rows - 1, this.y + n); break;
        case "C": this.x = Math.min(this.cols - 1, this.x + n); break;
        case "D": this.x = Math.max(0, this.x - n); break;
        case "G": this.x = Math.min(this.cols - 1, Math.max(0, n - 1)); break;
        case "H": case "f":
          this.y = Math.min(this.rows - 1, Math.max(0, (params[0] || 1) - 1));
          this.x = Math.min(this.cols - 1, Math.max(0, (params[1] || 1) - 1));
          break;
        case "J": {
          const mode = params[0] || 0;
          if (mode === 2 || mode === 3) {
            for (let r = 0; r < this.rows; r++) this.grid[r] = this.blankLine();
          } else if (mode === 0) {
            for (let c = this.x; c < this.cols; c++) this.grid[this.y][c] = { ch: " ", st: null };
            for (let r = this.y + 1; r < this.rows; r++) this.grid[r] = this.blankLine();
          }
          break;
        }
        case "K": {
          const mode = params[0] || 0;
          const from = mode === 0 ? this.x : 0;
          const to = mode === 1 ? this.x + 1 : this.cols;
          for (let c = from; c < to && c < this.cols; c++) this.grid[this.y][c] = { ch: " ", st: null };
          break;
        }
        case "m": this.sgr(params.length ? params : [0]); break;
        default: break;   // modes, scroll regions: ignored
      }
    }

    write(text) {
      text = this.pending + text;
      this.pending = "";
      for (let i = 0; i < text.length; i++) {
        const ch = text[i];
        if (ch === "\x1b") {
          if (i + 1 >= text.length) { this.pending = text.slice(i); return; }
          const next = text[i + 1];
          if (next === "[") {
            let j = i + 2;
            while (j < text.length && !/[@-~]/.test(text[j])) j++;
            if (j >= text.length) { this.pending = text.slice(i); return; }
            const body = text.slice(i + 2, j).replace(/^[?>=]/, "");
            const params = body.length ? body.split(";").map((v) => parseInt(v, 10) || 0) : [];
            this.csi(params, text[j]);
            i = j;
          } else if (next === "]") {
            // OSC (window titles): skip to BEL or ST.
            let j = i + 2;
            while (j < text.length && text[j] !== "\x07" && !(text[j] === "\x1b" && text[j + 1] === "\\")) j++;
            if (j >= text.length) { this.pending = text.slice(i); return; }
            i = text[j] === "\x07" ? j : j + 1;
          } else {
            i += 1;
          }
        } else if (ch === "\r") {
          this.x = 0;
        } else if (ch === "\n") {
          // Output without a terminal (exec) has bare line feeds: treat them as a terminal's
          // onlcr would (CR LF); with a terminal the CR came first anyway.
          this.x = 0;
          this.newline();
        } else if (ch === "\b") {
          this.x = Math.max(0, this.x - 1);
        } else if (ch === "\t") {
          this.x = Math.min(this.cols - 1, (Math.floor(this.x / 8) + 1) * 8);
        } else if (ch === "\x07" || ch < " ") {
          // bell and other controls: nothing to draw
        } else {
          this.put(ch);
        }
      }
    }

    render(element) {
      const fragment = document.createDocumentFragment();
      for (let r = 0; r < this.rows; r++) {
        const line = document.createElement("div");
        line.className = "term-line";
        let run = null;
        let runStyle = undefined;
        for (let c = 0; c < this.cols; c++) {
          const cell = this.grid[r][c];
          const key = cell.st ? JSON.stringify(cell.st) : "";
          if (run === null || key !== runStyle) {
            run = document.createElement("span");
            runStyle = key;
            if (cell.st) {
              let fg = cell.st.fg, bg = cell.st.bg;
              if (cell.st.inverse) { const t = fg; fg = bg || "var(--term-fg)"; bg = t || "var(--term-bg-inverse)"; }
              if (fg) run.style.color = fg;
              if (bg) run.style.backgroundColor = bg;
              if (cell.st.bold) run.style.fontWeight = "bold";
              if (cell.st.underline) run.style.textDecoration = "underline";
            }
            line.appendChild(run);
          }
          run.textContent += cell.ch;
        }
        fragment.appendChild(line);
      }
      element.replaceChildren(fragment);
    }
  }

  class Player {
    constructor(root) {
      this.root = root;
      this.screenElement = root.querySelector(".term");
      this.playButton = root.querySelector("[data-play]");
      this.seek = root.querySelector("[data-seek]");
      this.speed = root.querySelector("[data-speed]");
      this.clock = root.querySelector("[data-clock]");
      this.events = [];
      this.position = 0;     // seconds into the recording
      this.applied = 0;      // events applied to the screen
      this.playing = false;
      this.timer = null;
      this.load(root.getAttribute("data-cast"));
    }

    async load(url) {
      const response = await fetch(url, { credentials: "same-origin" });
      const text = await response.text();
      const lines = text.split("\n").filter((l) => l.trim().length);
      const header = JSON.parse(lines[0]);
      this.screen = new Screen(Math.min(header.width || 80, 300), Math.min(header.height || 24, 200));
      this.events = lines.slice(1).map((l) => JSON.parse(l)).filter((e) => e[1] === "o" || e[1] === "r");
      this.duration = this.events.length ? this.events[this.events.length - 1][0] : 0;
      this.seek.max = String(Math.max(this.duration, 0.001));
      this.seek.step = "0.01";
      this.playButton.addEventListener("click", () => (this.playing ? this.pause() : this.play()));
      this.seek.addEventListener("input", () => this.seekTo(parseFloat(this.seek.value)));
      this.speed.addEventListener("change", () => { if (this.playing) { this.pause(); this.play(); } });
      this.root.setAttribute("data-ready", "true");
      this.draw();
    }

    apply(until) {
      while (this.applied < this.events.length && this.events[this.applied][0] <= until) {
        const event = this.events[this.applied];
        if (event[1] === "o") this.screen.write(event[2]);
        this.applied++;
      }
    }

    seekTo(seconds) {
      this.position = Math.max(0, Math.min(seconds, this.duration));
      this.screen.reset();
      this.applied = 0;
      this.apply(this.position);
      this.draw();
    }

    play() {
      if (this.position >= this.duration) this.seekTo(0);
      this.playing = true;
      this.playButton.textContent = "Pause";
      let last = performance.now();
      const tick = (now) => {
        if (!this.playing) return;
        const factor = parseFloat(this.speed.value) || 1;
        this.position = Math.min(this.duration, this.position + ((now - last) / 1000) * factor);
        last = now;
        this.apply(this.position);
        this.draw();
        if (this.position >= this.duration) {
          this.pause();
          this.root.setAttribute("data-finished", "true");
          return;
        }
        this.timer = requestAnimationFrame(tick);
      };
      this.timer = requestAnimationFrame(tick);
    }

    pause() {
      this.playing = false;
      this.playButton.textContent = "Play";
      if (this.timer) cancelAnimationFrame(this.timer);
    }

    draw() {
      this.screen.render(this.screenElement);
      this.seek.value = String(this.position);
      this.clock.textContent = this.position.toFixed(1) + " / " + this.duration.toFixed(1) + " s";
    }
  }

  window.SluiceScreen = Screen;
  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-player]").forEach((root) => new Player(root));
  });
})();
