#!/usr/bin/env python3
"""A counting SMTP sink for bench/worker.sh: accepts every message on 127.0.0.1:PORT and
throws it away. Speaks just enough SMTP (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT).
Standard library only. Usage: smtp_sink.py PORT"""

import asyncio
import sys


async def session(reader, writer):
    async def say(line):
        writer.write(line.encode() + b"\r\n")
        await writer.drain()

    await say("220 bench-sink ESMTP")
    while True:
        line = await reader.readline()
        if not line:
            break
        verb = line.decode("utf-8", "replace").strip().split(" ", 1)[0].upper()
        if verb == "EHLO":
            await say("250-bench-sink")
            await say("250 8BITMIME")
        elif verb in ("HELO", "MAIL", "RCPT", "RSET", "NOOP"):
            await say("250 OK")
        elif verb == "DATA":
            await say("354 go on")
            while True:
                data = await reader.readline()
                if not data or data in (b".\r\n", b".\n"):
                    break
            await say("250 queued")
        elif verb == "QUIT":
            await say("221 bye")
            break
        else:
            await say("502 not here")
    writer.close()


async def main(port):
    server = await asyncio.start_server(session, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
