"""Azure OpenAI: OpenAI's chat and embeddings wire format behind Azure's URLs and auth.

References: Microsoft Learn "Azure OpenAI in Azure AI Foundry Models REST API reference"
(data-plane inference, ``POST {endpoint}/openai/deployments/{deployment-id}/chat/completions
?api-version=...``), "Content filtering" (``prompt_filter_results``, ``content_filter_results``,
``finish_reason: content_filter``, error code ``content_filter`` with ``innererror.code
ResponsibleAIPolicyViolation``), and "API version lifecycle" (the ``/openai/v1/`` path, which
takes the model/deployment name in the body and needs no ``api-version``).

Settings:

- ``base_url``: ``https://<resource>.openai.azure.com`` (required);
- ``options.deployments``: ``{"gpt-4o": "my-gpt4o-deployment"}``; a model id without an entry
  is used as the deployment name;
- ``options.api_version``: default `DEFAULT_API_VERSION`; ``"v1"`` selects the v1 path;
- ``options.auth``: ``"api-key"`` (default, ``api-key`` header) or ``"bearer"`` (the key is an
  Entra ID token sent as ``Authorization: Bearer``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from portal.contracts.request import ChatRequest, EmbedRequest
from portal.errors import ConfigError, ProviderError
from portal.providers.adapter import Capabilities
from portal.providers.openai import OpenAIAdapter
from portal.providers.settings import ProviderSettings
from portal.wire import WireReply

__all__ = ["DEFAULT_API_VERSION", "AzureOpenAIAdapter"]

#: the latest GA data-plane version documented when this adapter was written
DEFAULT_API_VERSION = "2024-10-21"


class AzureOpenAIAdapter(OpenAIAdapter):
    """Same limits as OpenAI (128 tools, strict schema limits), per deployment."""

    kind: ClassVar[str] = "azure-openai"
    option_names: ClassVar[frozenset[str] | None] = frozenset(
        {"api_version", "auth", "deployments"}
    )
    default_base_url: ClassVar[str | None] = None
    api_key_env: ClassVar[str | None] = "AZURE_OPENAI_API_KEY"
    capabilities: ClassVar[Capabilities] = Capabilities(
        structured_output="json_schema",
        schema_dialect="openai-strict",
        embed=True,
        max_tools=128,
        notes=("content-filter results kept in provider_details['content_filter']",),
    )

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        if not self.base_url:
            raise ConfigError(
                f"provider {settings.name!r} (azure-openai): base_url is required, "
                'e.g. base_url = "https://<resource>.openai.azure.com"'
            )
        self.base_url = self.base_url.removesuffix("/openai")
        opts = settings.options
        self.api_version = str(opts.get("api_version") or DEFAULT_API_VERSION)
        deployments = opts.get("deployments") or {}
        if not isinstance(deployments, Mapping):
            raise ConfigError(
                f"provider {settings.name!r}: options.deployments must be a table mapping "
                "model ids to deployment names"
            )
        self.deployments: dict[str, str] = {str(k): str(v) for k, v in deployments.items()}
        auth = str(opts.get("auth") or "api-key")
        if auth not in ("api-key", "bearer"):
            raise ConfigError(
                f"provider {settings.name!r}: options.auth must be 'api-key' or 'bearer', "
                f"got {auth!r}"
            )
        self.auth = auth

    @property
    def v1(self) -> bool:
        return self.api_version in ("v1", "latest", "preview")

    def deployment(self, model: str) -> str:
        return self.deployments.get(model, model)

    def auth_headers(self) -> dict[str, str]:
        if self.auth == "bearer":
            return {"authorization": f"Bearer {self.api_key()}"}
        return {"api-key": self.api_key()}

    def _url(self, model: str, operation: str) -> str:
        if self.v1:
            query = (
                "" if self.api_version in ("v1", "latest") else f"?api-version={self.api_version}"
            )
            return f"{self.base_url}/openai/v1/{operation}{query}"
        dep = quote(self.deployment(model), safe="")
        return (
            f"{self.base_url}/openai/deployments/{dep}/{operation}"
            f"?api-version={quote(self.api_version, safe='')}"
        )

    def chat_url(self, model: str) -> str:
        return self._url(model, "chat/completions")

    def embed_url(self, model: str) -> str:
        return self._url(model, "embeddings")

    def chat_body(self, req: ChatRequest, model: str) -> dict[str, Any]:
        body = super().chat_body(req, model)
        if self.v1:
            body["model"] = self.deployment(model)
        else:
            body.pop("model")  # the deployment in the URL decides the model
        return body

    def embed_body(self, req: EmbedRequest, model: str) -> dict[str, Any]:
        body = super().embed_body(req, model)
        if self.v1:
            body["model"] = self.deployment(model)
        else:
            body.pop("model")
        return body

    def request_id(self, headers: Mapping[str, str]) -> str | None:
        return (
            headers.get("apim-request-id")
            or headers.get("x-request-id")
            or headers.get("x-ms-request-id")
        )

    def error_details(self, reply: WireReply) -> tuple[str, str | None]:
        """Azure adds ``innererror.code`` (``ResponsibleAIPolicyViolation``) under ``error``."""
        message, code = super().error_details(reply)
        try:
            data = reply.json()
        except (ValueError, UnicodeDecodeError):
            return message, code
        err = data.get("error") if isinstance(data, dict) else None
        inner = err.get("innererror") if isinstance(err, dict) else None
        if isinstance(inner, dict) and inner.get("code") == "ResponsibleAIPolicyViolation":
            return message, "content_filter"
        return message, code

    def classify(self, status: int, code: str | None, message: str) -> type[ProviderError]:
        if code == "DeploymentNotFound":
            from portal.errors import NotFound

            return NotFound
        return super().classify(status, code, message)
