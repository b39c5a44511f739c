"""The Python floor for serving: the smallest granian + Starlette handler doing one HMGET (bench/serve.py)."""

import os

import orjson
import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

client = aioredis.Redis.from_url(os.environ["FEATUREHOUSE_REDIS_URL"])
KEY = os.environ["BENCH_KEY"]
FIELDS = os.environ["BENCH_FIELDS"].split(",")


async def handler(_request):
    values = await client.hmget(KEY, FIELDS)
    return Response(orjson.dumps({"n": sum(v is not None for v in values)}), media_type="application/json")


app = Starlette(routes=[Route("/v", handler)])
