"""Three GETs with one HTTP client library: a 200, a 404 and a refused connection.

``python http_client_app.py LIBRARY BASE_URL REFUSED_URL``; prints one line per call.
"""

import asyncio
import sys


def get_requests(url: str) -> tuple[int, str]:
    import requests

    answer = requests.get(url, timeout=5)
    return answer.status_code, answer.text


def get_httpx(url: str) -> tuple[int, str]:
    import httpx

    with httpx.Client(timeout=5) as client:
        answer = client.get(url)
    return answer.status_code, answer.text


def get_httpx_async(url: str) -> tuple[int, str]:
    import httpx

    async def get() -> tuple[int, str]:
        async with httpx.AsyncClient(timeout=5) as client:
            answer = await client.get(url)
        return answer.status_code, answer.text

    return asyncio.run(get())


def get_urllib3(url: str) -> tuple[int, str]:
    import urllib3

    answer = urllib3.PoolManager().request("GET", url, retries=False, timeout=5)
    return answer.status, answer.data.decode()


def main() -> int:
    library, base, refused = sys.argv[1:4]
    get = globals()[f"get_{library}"]
    for url in (base + "/ok", base + "/missing", refused + "/refused"):
        try:
            status, body = get(url)
            print(f"{status} {body}", flush=True)
        except Exception as error:
            print(f"error {type(error).__name__}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
