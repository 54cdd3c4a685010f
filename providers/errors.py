"""The one error tree every provider raises; the bot turns it into words in one place.

```
ProviderError            provider, status, code, detail, retry_after
├── InvalidChange        refused by expbot before any call: the experiment cannot take this change now
├── BadRequest           the provider refused the request's content (HTTP 400, 422)
├── NotFound             the experiment, or a part of it, does not exist (HTTP 404)
├── Conflict             the provider refused because of the experiment's state (HTTP 409)
│   └── Stale            ...because the experiment moved since it was read (optimistic lock): the request
│                        ends stale, not failed
├── Unauthorized         credentials missing, wrong, expired or lacking a role or scope (HTTP 401, 403)
├── RateLimited          still rate limited after the bounded retries (HTTP 429); `retry_after` says when
└── Unavailable          could not reach the provider, or it failed (5xx, timeouts, dropped connections)
    └── OutcomeUnknown   a write was sent but no answer came back: it may or may not have been carried out;
                         never repeated blindly, the adapter reads the provider to find out
```
"""

from __future__ import annotations


class ProviderError(Exception):
    """Anything a provider refused or failed to do."""

    def __init__(
        self,
        provider: str,
        detail: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{provider}: {detail}")
        self.provider = provider
        self.status = status
        self.code = code
        self.detail = detail
        self.retry_after = retry_after


class InvalidChange(ProviderError):
    """The change is not possible for the experiment as it is now (checked before any call)."""


class BadRequest(ProviderError):
    """The provider refused the request's content (HTTP 400, 422)."""


class NotFound(ProviderError):
    """The experiment (or a part of it) does not exist on the provider."""


class Conflict(ProviderError):
    """The provider refused the call because of the experiment's state (HTTP 409)."""


class Stale(Conflict):
    """The experiment changed since it was read (e.g. LaunchDarkly's `optimistic_locking_error`)."""


class Unauthorized(ProviderError):
    """Credentials are missing, wrong or lack the role (HTTP 401/403)."""


class RateLimited(ProviderError):
    """The provider asked us to slow down (HTTP 429), beyond what the retries absorb."""


class Unavailable(ProviderError):
    """The provider could not be reached or failed (timeouts, 5xx)."""


class OutcomeUnknown(Unavailable):
    """A write was sent and no answer came back: it may have been carried out."""
