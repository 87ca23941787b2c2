// The little the browser must do itself: keyboard, scrolling, copying, and showing the socket's
// state. Everything else is server-rendered HTML swapped in by htmx.
(function () {
  "use strict";

  var NEAR_BOTTOM_PX = 80;

  function messages() { return document.getElementById("messages"); }
  function composerInput() { return document.getElementById("composer-input"); }

  // --- scrolling: follow the stream unless the user scrolled up ------------------------------
  // Whether the view was at the bottom just before a frame changed the content: read then,
  // not from scroll events, which may arrive after the frame.
  var wasAtBottom = true;

  function atBottom(box) {
    return box.scrollHeight - box.scrollTop - box.clientHeight < NEAR_BOTTOM_PX;
  }

  function scrollToLatest() {
    var box = messages();
    if (box) { box.scrollTop = box.scrollHeight; }
    showJump(false);
  }

  function showJump(show) {
    var jump = document.getElementById("jump-latest");
    if (jump) { jump.hidden = !show; }
  }

  function afterContentChanged() {
    var box = messages();
    if (!box) { return; }
    if (wasAtBottom) { box.scrollTop = box.scrollHeight; } else { showJump(true); }
  }

  // --- copying --------------------------------------------------------------------------------
  function copyText(text, button) {
    var done = function () {
      // The label is CSS content ("Copy" / "Copied"), so it never joins the copied text.
      button.classList.add("copied");
      setTimeout(function () { button.classList.remove("copied"); }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text); done(); });
    } else {
      fallbackCopy(text);
      done();
    }
  }

  function fallbackCopy(text) {
    // Plain http on an intranet has no Clipboard API: a hidden textarea and execCommand do it.
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } catch (e) { /* nothing more to try */ }
    document.body.removeChild(area);
  }

  // Each code block of a reply gets its own copy button.
  function decorateCodeBlocks(root) {
    var blocks = (root || document).querySelectorAll(".markdown pre:not([data-copy-ready])");
    blocks.forEach(function (pre) {
      pre.setAttribute("data-copy-ready", "");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "copy-code";
      button.setAttribute("data-testid", "copy-code");
      button.setAttribute("aria-label", "Copy this code");
      pre.appendChild(button);
    });
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) { return; }
    var codeButton = target.closest(".copy-code");
    if (codeButton) {
      var code = codeButton.parentElement.querySelector("code");
      copyText((code || codeButton.parentElement).innerText.replace(/\n$/, ""), codeButton);
      return;
    }
    var messageButton = target.closest("[data-copy-target]");
    if (messageButton) {
      var body = document.getElementById(messageButton.getAttribute("data-copy-target"));
      if (body) { copyText(body.innerText.trim(), messageButton); }
      return;
    }
    if (target.closest("[data-sidebar-toggle]")) {
      document.body.classList.toggle("sidebar-open");
      return;
    }
    if (target.closest("[data-shortcuts-open]")) {
      openShortcuts();
      return;
    }
    if (target.closest("[data-rename-open]")) {
      renameOpen(true);
      return;
    }
    if (target.closest("[data-rename-cancel]")) {
      renameOpen(false);
    }
  });

  // --- rename in place -----------------------------------------------------------------------
  function renameOpen(open) {
    var form = document.getElementById("rename-form");
    var title = document.getElementById("conversation-title");
    if (!form || !title) { return; }
    form.hidden = !open;
    title.hidden = open;
    if (open) {
      var input = form.querySelector("input[name=title]");
      input.value = title.textContent.trim();
      input.focus();
      input.select();
    }
  }

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (target instanceof Element && target.closest("#rename-form") && event.key === "Escape") {
      renameOpen(false);
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.elt && event.detail.elt.id === "rename-form" && event.detail.successful) {
      renameOpen(false);
    }
  });

  // --- the composer: Enter sends, Shift+Enter adds a line ------------------------------------
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (!(target instanceof HTMLTextAreaElement) || event.key !== "Enter") { return; }
    if (event.shiftKey || event.isComposing || event.altKey || event.ctrlKey || event.metaKey) { return; }
    var form = target.form;
    if (!form || !form.matches("#composer, .edit form")) { return; }
    event.preventDefault();
    var send = document.querySelector("[data-testid=send]");
    if (form.id === "composer" && send && send.disabled) { return; }  // a reply is streaming
    if (!target.value.trim()) { return; }
    form.requestSubmit();
  });

  // --- images with a message: a websocket frame cannot carry files, so such a message is
  // posted over HTTP; the page hears of the turn over its socket like any other.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-send-with-images")) { return; }
    var files = form.querySelector("input[type=file][name=images]");
    if (!files || !files.files.length) { return; }  // text only: the socket sends it
    event.preventDefault();
    event.stopImmediatePropagation();
    var error = document.getElementById("chat-error");
    var token = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"];
    fetch(form.getAttribute("data-send-with-images"), {
      method: "POST", body: new FormData(form), headers: { "X-CSRFToken": token }, credentials: "same-origin"
    }).then(function (response) {
      if (response.ok) {
        form.reset();
        var previews = document.getElementById("image-previews");
        if (previews) { previews.replaceChildren(); }
        if (error) { error.textContent = ""; }
        return;
      }
      // The message and the files stay in the form, so nothing typed is lost.
      return response.text().then(function (text) { if (error) { error.textContent = text; } });
    }, function () {
      if (error) { error.textContent = "The message could not be sent: the server did not answer."; }
    });
  }, true);

  // --- keyboard shortcuts --------------------------------------------------------------------
  function openShortcuts() {
    var dialog = document.getElementById("shortcuts");
    if (dialog && !dialog.open) { dialog.showModal(); }
  }

  document.addEventListener("keydown", function (event) {
    var ctrl = event.ctrlKey || event.metaKey;
    if (ctrl && event.shiftKey && (event.key === "O" || event.key === "o")) {
      event.preventDefault();
      var link = document.querySelector("[data-testid=new-conversation]");
      if (link) { window.location.href = link.href; }
    } else if (event.shiftKey && event.key === "Escape") {
      event.preventDefault();
      var input = composerInput();
      if (input) { input.focus(); }
    } else if (ctrl && (event.key === "k" || event.key === "K")) {
      event.preventDefault();
      document.body.classList.add("sidebar-open");
      var search = document.getElementById("conversation-search");
      if (search) { search.focus(); }
    } else if (ctrl && event.key === "/") {
      event.preventDefault();
      openShortcuts();
    }
  });

  // --- the new-conversation form: what the chosen model allows -------------------------------
  function modelChosen() {
    var select = document.getElementById("model-select");
    if (!select) { return; }
    var option = select.options[select.selectedIndex];
    if (!option) { return; }
    var vision = option.getAttribute("data-vision") === "1";
    var locked = option.getAttribute("data-locked-prompt") || "";
    var attach = document.getElementById("attach");
    if (attach) {
      attach.hidden = !vision;
      attach.querySelector("input").disabled = !vision;
    }
    var choice = document.getElementById("system-prompt-choice");
    if (choice) {
      choice.hidden = !!locked;
      choice.querySelector("select").disabled = !!locked;
    }
    var lockedNotice = document.getElementById("locked-prompt");
    if (lockedNotice) {
      lockedNotice.hidden = !locked;
      document.getElementById("locked-prompt-name").textContent = locked;
    }
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target instanceof HTMLSelectElement && target.id === "model-select") { modelChosen(); }
    if (target instanceof HTMLInputElement && target.name === "images") { showPreviews(target); }
  });

  function showPreviews(input) {
    var box = document.getElementById("image-previews");
    if (!box) { return; }
    box.replaceChildren();
    Array.prototype.forEach.call(input.files, function (file) {
      var image = document.createElement("img");
      image.alt = file.name;
      image.src = URL.createObjectURL(file);
      image.className = "preview";
      box.appendChild(image);
    });
  }

  // --- the socket's state --------------------------------------------------------------------
  document.addEventListener("htmx:wsClose", function () {
    var banner = document.getElementById("connection-banner");
    if (banner) { banner.hidden = false; }
  });
  document.addEventListener("htmx:wsOpen", function () {
    var banner = document.getElementById("connection-banner");
    if (banner) { banner.hidden = true; }
  });

  document.addEventListener("htmx:wsBeforeMessage", function () {
    var box = messages();
    wasAtBottom = !box || atBottom(box);
  });

  document.addEventListener("htmx:wsAfterMessage", function () {
    // A title pushed over the socket also names the browser tab.
    var title = document.getElementById("conversation-title");
    if (title && title.textContent.trim()) {
      document.title = title.textContent.trim() + " · Chat";
    }
    decorateCodeBlocks(messages());
    afterContentChanged();
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    decorateCodeBlocks(event.detail.target);
  });

  function init() {
    decorateCodeBlocks(document);
    modelChosen();
    var box = messages();
    if (box) {
      box.addEventListener("scroll", function () {
        if (atBottom(box)) { showJump(false); }
      }, { passive: true });
      scrollToLatest();
    }
    var jump = document.getElementById("jump-latest");
    if (jump) { jump.addEventListener("click", scrollToLatest); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
