"""Async iterators over the providers' list pages (links, cursors, offsets, checkpoints), each with a page cap."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from providers.errors import ProviderError
from providers.http import HttpClient

MAX_PAGES = 500  # a misbehaving server that always answers "there is more" stops here, loudly


def _items(client: HttpClient, page: Any, key: str) -> list[Any]:
    if not isinstance(page, dict):
        raise ProviderError(client.provider, f"expected a JSON object with {key!r}, got {type(page).__name__}")
    items = page.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        raise ProviderError(client.provider, f"expected a list in {key!r}, got {type(items).__name__}")
    return items


def _same_origin(client: HttpClient, link: str) -> str:
    """A next-page link as an absolute URL; one pointing at another host would carry our credentials there."""
    base, target = client.base_url, client.base_url.join(link)
    if (target.scheme, target.host, target.port) != (base.scheme, base.host, base.port):
        raise ProviderError(client.provider, f"refused to follow a next-page link to another host ({target.host})")
    return str(target)


def _loop_guard(client: HttpClient, seen: set[str], marker: str) -> None:
    if marker in seen:
        raise ProviderError(client.provider, "the server sent the same next page twice; stopped paging")
    seen.add(marker)


def _capped(client: HttpClient, max_pages: int) -> ProviderError:
    return ProviderError(client.provider, f"stopped after {max_pages} pages: the server kept announcing more")


async def pages_links_next(
    client: HttpClient,
    path: str,
    params: Mapping[str, Any] | None = None,
    items_key: str = "data",
    *,
    max_pages: int = MAX_PAGES,
) -> AsyncIterator[Any]:
    """JSON:API paging (App Store Connect): follow `links.next`, an absolute or relative URL."""
    url, query, seen = path, params, set[str]()
    for _ in range(max_pages):
        page = await client.get_json(url, params=query)
        for item in _items(client, page, items_key):
            yield item
        links = page.get("links")
        link = links.get("next") if isinstance(links, dict) else None
        if not isinstance(link, str) or not link:
            return
        url, query = _same_origin(client, link), None
        _loop_guard(client, seen, url)
    raise _capped(client, max_pages)


async def _token_pages(
    client: HttpClient,
    path: str,
    query: dict[str, Any],
    items_key: str,
    token_param: str,
    next_key: str,
    max_pages: int,
) -> AsyncIterator[Any]:
    seen = set[str]()
    for _ in range(max_pages):
        page = await client.get_json(path, params=query)
        items = _items(client, page, items_key)
        for item in items:
            yield item
        token = page.get(next_key)
        if token is None or token == "" or not items:
            return
        _loop_guard(client, seen, str(token))
        query = {**query, token_param: str(token)}
    raise _capped(client, max_pages)


def pages_cursor(
    client: HttpClient,
    path: str,
    params: Mapping[str, Any] | None,
    items_key: str,
    cursor_param: str = "cursor",
    next_key: str = "nextCursor",
    *,
    max_pages: int = MAX_PAGES,
) -> AsyncIterator[Any]:
    """Cursor paging (Amplitude): send `cursor` = the previous page's `nextCursor` until there is none."""
    return _token_pages(client, path, dict(params or {}), items_key, cursor_param, next_key, max_pages)


def pages_checkpoint(
    client: HttpClient,
    path: str,
    params: Mapping[str, Any] | None,
    items_key: str,
    from_param: str = "from",
    next_key: str = "next",
    take: int = 50,
    *,
    max_pages: int = MAX_PAGES,
) -> AsyncIterator[Any]:
    """Checkpoint paging (Auth0): `take` items, then `from` = the previous page's `next` until there is none."""
    return _token_pages(client, path, {**(params or {}), "take": take}, items_key, from_param, next_key, max_pages)


async def pages_offset(
    client: HttpClient,
    path: str,
    params: Mapping[str, Any] | None = None,
    items_key: str = "items",
    limit: int = 20,
    total_key: str = "totalCount",
    *,
    max_pages: int = MAX_PAGES,
) -> AsyncIterator[Any]:
    """Offset paging (LaunchDarkly): follow `_links.next.href` when given, else step `offset` by what came back
    until `totalCount` is reached or, without a total, a page is short."""
    base = dict(params or {})
    url: str = path
    query: dict[str, Any] | None = {**base, "limit": limit, "offset": 0}
    offset, seen = 0, set[str]()
    for _ in range(max_pages):
        page = await client.get_json(url, params=query)
        items = _items(client, page, items_key)
        for item in items:
            yield item
        if not items:
            return
        offset += len(items)
        links = page.get("_links")
        link = links.get("next") if isinstance(links, dict) else None
        href = link.get("href") if isinstance(link, dict) else link
        if isinstance(href, str) and href:
            url, query = _same_origin(client, href), None
            _loop_guard(client, seen, url)
            continue
        total = page.get(total_key)
        if offset >= total if isinstance(total, int) and not isinstance(total, bool) else len(items) < limit:
            return
        url, query = path, {**base, "limit": limit, "offset": offset}
    raise _capped(client, max_pages)
