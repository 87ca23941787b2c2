"""What can go wrong talking to Ollama, as classes a caller can act on.

Every error's ``str()`` is a sentence fit to show a user; ``detail`` keeps Ollama's own words.
"""

from __future__ import annotations


class OllamaError(Exception):
    """Anything that kept a request to Ollama from completing."""

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class OllamaUnreachable(OllamaError):
    """No connection: refused, unknown host, TLS failure or connect timeout."""

    def __init__(self, base_url: str, reason: str) -> None:
        super().__init__(
            f"Ollama is not reachable at {base_url}: start it with `ollama serve`, "
            "or point OLLAMA_HOST at the right server.",
            detail=reason,
        )
        self.base_url = base_url


class OllamaResponseError(OllamaError):
    """Ollama answered with an HTTP error status before sending any output."""

    def __init__(self, message: str, *, status_code: int, server_message: str) -> None:
        super().__init__(message, detail=server_message)
        self.status_code = status_code
        self.server_message = server_message


class ModelNotFound(OllamaResponseError):
    """404: the model is not installed on the Ollama server."""

    def __init__(self, model: str, server_message: str) -> None:
        super().__init__(
            f"Model '{model}' is not installed on the Ollama server: an admin can install it "
            f"with `ollama pull {model}`, or pick another model.",
            status_code=404,
            server_message=server_message,
        )
        self.model = model


class BadRequest(OllamaResponseError):
    """400: Ollama refused the request as sent (bad think value, tools unsupported, …)."""

    def __init__(self, server_message: str) -> None:
        super().__init__(
            f"Ollama refused the request: {server_message}",
            status_code=400,
            server_message=server_message,
        )


class ServerBusy(OllamaResponseError):
    """503 (or 429): Ollama's queue is full. Trying again later can work."""

    def __init__(self, server_message: str, status_code: int = 503) -> None:
        super().__init__(
            "Ollama is busy with other requests: try again in a moment.",
            status_code=status_code,
            server_message=server_message,
        )


class OllamaServerError(OllamaResponseError):
    """Any other HTTP error status, e.g. 500 for an option of the wrong type."""

    def __init__(self, status_code: int, server_message: str) -> None:
        super().__init__(
            f"Ollama failed (HTTP {status_code}): {server_message}",
            status_code=status_code,
            server_message=server_message,
        )


class StreamError(OllamaError):
    """Ollama reported an error after output had started (an ``{"error": …}`` line)."""

    def __init__(self, server_message: str) -> None:
        super().__init__(f"Ollama stopped with an error: {server_message}", detail=server_message)
        self.server_message = server_message


class StreamInterrupted(OllamaError):
    """The stream ended before its ``done: true`` chunk: the connection was cut."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(
            "The connection to Ollama was cut before the reply was finished.", detail=reason
        )


class StreamStalled(StreamInterrupted):
    """Ollama sent nothing for longer than the stall timeout once output had started."""

    def __init__(self, seconds: float) -> None:
        OllamaError.__init__(
            self,
            f"Ollama sent nothing for {seconds:g} seconds, so the reply was abandoned.",
            detail=f"stall timeout {seconds:g} s",
        )
        self.seconds = seconds


class MalformedResponse(OllamaError):
    """Ollama sent something that is not the JSON the API defines."""

    def __init__(self, reason: str) -> None:
        super().__init__("Ollama sent a response that could not be read.", detail=reason)
