"""The Tiyaro post's sample client (../shared/reference/tiyaro-whisper-api-blog.txt), call for call.

Its requests, headers, status-code asserts and JSON paths are the post's; only
what the post cannot know is a parameter: the base URL (PROD_BASE), the key
(TIYARO_API_KEY) and the time between polls (the post sleeps 15 s). httpx stands in for
requests (same calls: `request("POST", url, json={}, headers=...)`).
"""

from __future__ import annotations

import json
import time

import httpx


def getHeaders(api_key: str) -> dict[str, str]:  # noqa: N802 (the post's name)
    return {
        'Content-Type': 'application/json',
        'Authorization': f'Bearer {api_key}'
    }


def whisper_input() -> dict:
    return {
        "no_speech_threshold": 0.6,
        "patience": 1,
        "suppress_tokens": "-1",
        "compression_ratio_threshold": 2.4,
        # NOTE Remove 'language' parame if you want native language
        "language": "en",
        "temperature_increment_on_fallback": 0.2,
        "length_penalty": None,
        "logprob_threshold": -1,
        "condition_on_previous_text": True,
        "initial_prompt": None,
        "task": "transcribe",
        "temperature": 0,
        "beam_size": 5,
        "best_of": 5
    }


def get_upload_url(PROD_BASE: str, api_key: str, extension: str = 'mp3') -> str:  # noqa: N803
    MP3_UPLOAD_URL = f'{PROD_BASE}/v1/input/upload-url?extension=mp3'  # noqa: N806
    resp = httpx.request("POST", MP3_UPLOAD_URL, json={}, headers=getHeaders(api_key))
    assert resp.status_code == 201
    result = json.loads(resp.text)
    uploadURL = result['uploadUrl']['PUT']  # noqa: N806
    return uploadURL


def upload_mp3_to_url(mp3File: str, upload_url: str) -> None:  # noqa: N803
    with open(mp3File, 'rb') as f:
        resp = httpx.request("PUT", upload_url, content=f.read())
    assert resp.status_code == 200


def send_async_infer_request(PROD_BASE: str, api_key: str, upload_url: str) -> str:  # noqa: N803
    WHISPER_LARGE_ASYNC_PATH = f'{PROD_BASE}/v1/async/ent/tiyarofs/1/openai/whisper-large?serviceTier=gpuflex'  # noqa: N806
    payload = {
        "input": whisper_input(),
        "URL": upload_url
    }
    resp = httpx.post(WHISPER_LARGE_ASYNC_PATH, headers=getHeaders(api_key), json=payload)
    assert resp.status_code == 202
    result = json.loads(resp.text)
    request_id = result['response']['id']
    assert request_id
    return result['response']['urls']['GET']


def check_status_and_result(inference_result_url: str, api_key: str, pause: float = 0.2) -> str:
    status = "NA"
    result = None
    while True:
        resp = httpx.request("GET", inference_result_url, headers=getHeaders(api_key))
        assert resp.status_code == 200
        result = json.loads(resp.text)
        status = result["status"]
        if status == 'success':
            break
        assert status in ("accepted", "pending", "processing"), result  # the post never checks: we do
        time.sleep(pause)
    text = result["result"]["text"]
    return text


def async_infer(PROD_BASE: str, api_key: str, input_mp3: str) -> str:  # noqa: N803
    # Step 1 - Get a presigned url to upload your audio file
    upload_url = get_upload_url(PROD_BASE, api_key)
    # Step 2 - Upload your mp3 file to the presinged url
    upload_mp3_to_url(input_mp3, upload_url)
    # Step 3 - Submit an Async request. You get a inference_result_url that you can poll on.
    inference_result_url = send_async_infer_request(PROD_BASE, api_key, upload_url)
    # Step 4 - Poll/Wait for request to finish
    return check_status_and_result(inference_result_url, api_key)
