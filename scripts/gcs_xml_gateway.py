"""Loopback gateway in front of fake-gcs-server for the GCS tests (started by services.sh).

object_store, like gsutil and GDAL, speaks Cloud Storage's XML API. fake-gcs-server serves
that API's GET, HEAD and bucket listing, but not a plain object PUT or DELETE (its issue
#331; the XML support of its PR #1164 was never merged). This gateway passes every request
through unchanged except those two, which it sends to the same server's JSON API:

    PUT    /BUCKET/KEY   ->  POST /upload/storage/v1/b/BUCKET/o?uploadType=media&name=KEY
    DELETE /BUCKET/KEY   ->  DELETE /storage/v1/b/BUCKET/o/KEY

answering as the XML API does (an ETag and x-goog-generation header, no body). Requests of
the XML multipart upload (?uploads, ?uploadId=) pass through and fail: fake-gcs-server has
none. Nothing is stored here; the bytes live in fake-gcs-server.

Usage: python gcs_xml_gateway.py LISTEN_PORT UPSTREAM_PORT
"""

import http.client
import http.server
import json
import sys
import urllib.parse

UPSTREAM = ("127.0.0.1", 0)
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class Gateway(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            return self.rfile.read(n)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        return b""

    def _upstream(self, method, path, body, headers):
        conn = http.client.HTTPConnection(*UPSTREAM, timeout=120)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.reason, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def _answer(self, status, reason, headers, body, head=False):
        self.send_response(status, reason)
        sent_length = False
        for k, v in headers:
            if k.lower() in HOP:
                continue
            if k.lower() == "content-length":
                sent_length = True
            self.send_header(k, v)
        if not sent_length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _object(self):
        """(bucket, key, query) of an XML object request, or None."""
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.lstrip("/").split("/", 1)
        if len(parts) != 2 or not parts[1]:
            return None
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        # object_store percent-encodes every character but letters and digits, "/" too.
        return urllib.parse.unquote(parts[0]), urllib.parse.unquote(parts[1]), query

    def _forward(self, head=False):
        body = self._body()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP and k.lower() != "host"}
        headers["Host"] = "%s:%d" % UPSTREAM
        self._answer(*self._upstream(self.command, self.path, body or None, headers), head=head)

    def do_GET(self):
        self._forward()

    def do_HEAD(self):
        self._forward(head=True)

    def do_POST(self):
        self._forward()

    def do_PUT(self):
        obj = self._object()
        if obj is None or "uploadId" in obj[2] or "partNumber" in obj[2]:
            return self._forward()
        bucket, key, _ = obj
        body = self._body()
        query = {"uploadType": "media", "name": key}
        # fake-gcs-server ignores it; a server that honours it answers 412 as GCS does.
        match = self.headers.get("x-goog-if-generation-match")
        if match is not None:
            query["ifGenerationMatch"] = match
        path = "/upload/storage/v1/b/%s/o?%s" % (urllib.parse.quote(bucket, safe=""), urllib.parse.urlencode(query))
        headers = {
            "Content-Type": self.headers.get("Content-Type", "application/octet-stream"),
            "Content-Length": str(len(body)),
            "Host": "%s:%d" % UPSTREAM,
        }
        status, reason, rheaders, rbody = self._upstream("POST", path, body, headers)
        if status != 200:
            return self._answer(status, reason, rheaders, rbody)
        meta = json.loads(rbody)
        self._answer(200, "OK", [("ETag", '"%s"' % meta.get("etag", meta.get("md5Hash", ""))),
                                 ("x-goog-generation", str(meta.get("generation", "")))], b"")

    def do_DELETE(self):
        obj = self._object()
        if obj is None or "uploadId" in obj[2]:
            return self._forward()
        bucket, key, _ = obj
        self._body()
        path = "/storage/v1/b/%s/o/%s" % (urllib.parse.quote(bucket, safe=""), urllib.parse.quote(key, safe=""))
        status, reason, rheaders, rbody = self._upstream("DELETE", path, None, {"Host": "%s:%d" % UPSTREAM})
        if status in (200, 204):
            return self._answer(204, "No Content", [], b"")
        self._answer(status, reason, rheaders, rbody)


def main():
    global UPSTREAM
    listen, upstream = int(sys.argv[1]), int(sys.argv[2])
    UPSTREAM = ("127.0.0.1", upstream)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", listen), Gateway)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
