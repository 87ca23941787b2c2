// The little the browser must do itself; everything else is server-rendered HTML.
(function () {
  "use strict";

  // A title pushed over the socket also names the browser tab.
  document.addEventListener("htmx:wsAfterMessage", function () {
    var title = document.getElementById("conversation-title");
    if (title && title.textContent.trim()) {
      document.title = title.textContent.trim() + " · Chat";
    }
  });
})();
