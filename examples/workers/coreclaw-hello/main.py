#!/usr/bin/env python3
# -*- coding: utf-8 -*-  # noqa: UP009 -- kept as in CoreClaw's worker template
import asyncio

from sdk import CoreSDK


async def run() -> None:
    try:
        input_json_dict = CoreSDK.Parameter.get_input_json_dict()
        CoreSDK.Log.debug(f"params: {input_json_dict}")

        name = str(input_json_dict.get("name") or "World")
        count = int(input_json_dict.get("count", 3))
        if count < 0:
            raise ValueError(f"count must not be negative, got {count}")

        # CoreClaw shows these columns in the given order, with these labels.
        headers = [
            {"label": "Index", "key": "index", "format": "integer"},
            {"label": "Name", "key": "name", "format": "text"},
            {"label": "Greeting", "key": "greeting", "format": "text"},
        ]
        CoreSDK.Result.set_table_header(headers)

        for index in range(1, count + 1):
            result = {"index": index, "name": name, "greeting": f"Hello, {name}! ({index}/{count})"}
            CoreSDK.Result.push_data(result)
            CoreSDK.Log.info(f"Pushed greeting {index}/{count}")

        CoreSDK.Log.info("Script execution completed")

    except Exception as e:
        # The template's failure path: an error row for the result table, then a failed run.
        CoreSDK.Log.error(f"Script execution error: {e}")
        error_result = {"error": str(e), "error_code": "500", "status": "failed"}
        CoreSDK.Result.push_data(error_result)
        raise


if __name__ == "__main__":
    asyncio.run(run())
