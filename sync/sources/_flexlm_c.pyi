from sync.report import Checkout

SOURCE_SHA256: str

def checkouts(body: str, cls: type[Checkout], /) -> list[Checkout] | None: ...
