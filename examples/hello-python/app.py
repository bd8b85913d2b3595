"""A minimal `wasi:http/proxy` component in Python, built with componentize-py.

Answers every request with 200 `text/plain` "Hello from Python on lambent!" and
echoes the request method and path-with-query in the `x-method` and `x-path`
response headers.
"""

from wit_world import exports
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    Method_Other,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)
from componentize_py_types import Ok

BODY = b"Hello from Python on lambent!\n"


def method_name(method) -> str:
    if isinstance(method, Method_Other):
        return method.value
    # Method_Get -> "GET", Method_Post -> "POST", ...
    return type(method).__name__.removeprefix("Method_").upper()


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        method = method_name(request.method())
        path = request.path_with_query() or "/"

        headers = Fields.from_list(
            [
                ("content-type", b"text/plain"),
                ("content-length", str(len(BODY)).encode()),
                ("x-method", method.encode()),
                ("x-path", path.encode()),
            ]
        )
        response = OutgoingResponse(headers)
        response.set_status_code(200)
        body = response.body()
        ResponseOutparam.set(response_out, Ok(response))

        # The stream must be dropped (end of `with`) before the body is finished.
        with body.write() as stream:
            stream.blocking_write_and_flush(BODY)
        OutgoingBody.finish(body, None)
