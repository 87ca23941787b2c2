// The system prompt preview in the admin: posts the form's current text with a test message
// and shows the answer as it streams (newline-delimited JSON). The answer is model output, so it
// is only ever set as text, never as HTML.
(function () {
  "use strict";

  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  async function run(section, output, button) {
    const body = new FormData();
    const text = document.getElementById("id_text");
    body.append("text", text ? text.value : "");
    body.append("model", document.getElementById("preview-model").value);
    body.append("message", document.getElementById("preview-message").value);
    output.textContent = "";
    output.classList.remove("failed");
    button.disabled = true;
    try {
      const response = await fetch(section.dataset.previewUrl, {
        method: "POST",
        body: body,
        headers: { "X-CSRFToken": csrfToken() },
        credentials: "same-origin",
      });
      if (!response.ok) {
        output.textContent = await response.text();
        output.classList.add("failed");
        return;
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let pending = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        pending += decoder.decode(value, { stream: true });
        const lines = pending.split("\n");
        pending = lines.pop();
        for (const line of lines) {
          if (!line) continue;
          const item = JSON.parse(line);
          if (item.content) output.textContent += item.content;
          if (item.error) {
            output.textContent += (output.textContent ? "\n\n" : "") + item.error;
            output.classList.add("failed");
          }
          if (item.done) section.dataset.previewDone = "true";
        }
      }
    } catch (error) {
      output.textContent = "The preview could not run: " + error;
      output.classList.add("failed");
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    const section = document.getElementById("prompt-preview");
    if (!section) return;
    const button = document.getElementById("preview-run");
    const output = document.getElementById("preview-output");
    button.addEventListener("click", function () {
      delete section.dataset.previewDone;
      run(section, output, button);
    });
  });
})();
