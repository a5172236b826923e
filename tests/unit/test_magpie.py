"""Magpie without a model: the pre-query templates (ChatML, Llama 3, Gemma, Qwen, from a template
text, given as text), each of Magpie's query rules, and the API's checks of a magpie job (real
PostgreSQL)."""

from __future__ import annotations

import pytest

from app.core.methods import magpie_rules as rules
from app.core.methods import magpie_templates as t
from app.core.params import MagpieParams
from tests.service_fixtures import api, api_settings, client, other_api  # noqa: F401

# SmolLM2-135M-Instruct's template, as its GGUF carries it (llama.cpp's /props shows the same)
SMOLLM2 = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
           "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
           "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
           "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
# Gemma's template (shortened: the system message folded into the first user turn, as Gemma's does)
GEMMA = ("{{ bos_token }}{% for message in messages %}{% if message['role'] == 'assistant' %}{% set role = 'model' %}"
         "{% else %}{% set role = message['role'] %}{% endif %}"
         "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
         "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}")
# a template of no known family, with a user-turn end of its own
ODD = ("{% for m in messages %}{% if m['role'] == 'user' %}### User:\n{{ m['content'] }}\n### End\n"
       "{% else %}### Bot:\n{{ m['content'] }}\n### End\n{% endif %}{% endfor %}")
CONVERSATION = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]


def test_known_families():
    assert t.FAMILIES["chatml"].prefix == "<|im_start|>user\n"
    assert t.FAMILIES["llama3"].prefix == "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
    assert t.FAMILIES["gemma"].prefix == "<bos><start_of_turn>user\n"
    assert t.FAMILIES["qwen2.5"].prefix == ("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a "
                                            "helpful assistant.<|im_end|>\n<|im_start|>user\n")
    assert t.FAMILIES["qwen3"].prefix == "<|im_start|>user\n"
    assert "<|eot_id|>" in t.FAMILIES["llama3"].stop and "<end_of_turn>" in t.FAMILIES["gemma"].stop
    assert t.FAMILIES["llama3"].prompt(CONVERSATION) == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n")
    assert t.FAMILIES["gemma"].prompt(CONVERSATION) == (
        "<bos><start_of_turn>user\nHi?<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n<start_of_turn>user\n")
    assert t.from_model_name("meta-llama/Meta-Llama-3.1-8B-Instruct").name == "llama3"
    assert t.from_model_name("Qwen/Qwen2.5-7B-Instruct").name == "qwen2.5"
    assert t.from_model_name("google/gemma-2-9b-it").name == "gemma"
    assert t.from_model_name("some-model") is None


def test_from_a_template_text_with_its_default_system_turn():
    smol = t.from_chat_template(SMOLLM2, "<|im_start|>", "<|im_end|>")
    system = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    assert smol.prefix == system + "<|im_start|>user\n"
    assert smol.system == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    assert smol.stop[0] == "<|im_end|>"
    assert smol.prompt(CONVERSATION) == (system + "<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n"
                                         "Hello.<|im_end|>\n<|im_start|>user\n")
    gemma = t.from_chat_template(GEMMA, "<bos>", "<eos>")
    assert gemma.prefix == t.FAMILIES["gemma"].prefix and gemma.system is None
    assert gemma.prompt(CONVERSATION) == t.FAMILIES["gemma"].prompt(CONVERSATION)
    odd = t.from_chat_template(ODD, eos_token="</s>")
    assert odd.prefix == "### User:\n" and odd.stop == ("### End", "</s>")
    assert odd.prompt(CONVERSATION).endswith("### Bot:\nHello.\n### End\n### User:\n")
    # resolve: a given prefix, a family, the server's template, the model's name, in that order
    props = {"chat_template": SMOLLM2, "bos_token": "<|im_start|>", "eos_token": "<|im_end|>"}
    assert t.resolve(props=props, model="smollm2-135m-instruct").prefix == smol.prefix
    assert t.resolve(template="gemma", props=props).name == "gemma"
    assert t.resolve(props=None, model="Qwen2-7B-Instruct").name == "qwen2"
    with pytest.raises(t.TemplateError, match="set `template`"):
        t.resolve(props={}, model="mystery")
    with pytest.raises(t.TemplateError, match="cannot be rendered"):
        t.from_chat_template("{% for m in messages %}")


def test_a_given_prefix():
    chat = t.given("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n")
    assert chat.prefix == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n"
    assert chat.prompt(CONVERSATION).startswith(chat.prefix + "Hi?<|im_end|>\n<|im_start|>assistant\nHello.")
    alone = t.given("USER: ", ["\nASSISTANT"])
    assert alone.prefix == "USER: " and not alone.multi_turn
    with pytest.raises(t.TemplateError, match="n_turns must be 1"):
        alone.prompt(CONVERSATION)
    with pytest.raises(t.TemplateError, match="end_of_turn"):
        t.given("USER: ")


def test_each_query_rule():
    assert rules.truncated_query("length") == "truncated_query" and rules.truncated_query("stop") is None
    assert rules.empty_query("  \n") == "empty_query" and rules.empty_query("Why?") is None
    for reply in ("Sure! Here is a poem about the sea.", "Certainly, the answer is 4.", "Here's a list of ideas:",
                  "Hello! How can I assist you today?", "I'd be happy to help with that."):
        assert rules.query_is_answer(reply) == "query_is_answer", reply
    for query in ("How do I make sure my bread rises?", "Here in Oslo, what should I wear in March?",
                  "Write a short poem about the sea."):
        assert rules.query_is_answer(query) is None, query
    assert rules.detect_language("Comment est-ce que je peux apprendre le piano dans une semaine ?") == "fr"
    assert rules.detect_language("¿Cuál es la mejor manera de aprender a programar en Python para un niño?") == "es"
    assert rules.detect_language("如何在一周内学会弹钢琴？") == "other"
    assert rules.wrong_language("Wie kann ich mit meinem Hund auf eine Reise gehen, ist das nicht schwer?",
                                "en") == "wrong_language"
    assert rules.wrong_language("What is the best way to learn the piano in a week?", "en") is None
    assert rules.wrong_language("Photosynthesis?", "en") is None  # too little to tell
    assert rules.wrong_language("如何在一周内学会弹钢琴？", "any") is None
    assert rules.query_rule("Sure, here you go", "length", "en") == "truncated_query"  # cut comes first
    assert rules.query_rule("Sure, here you go", "stop", "en") == "query_is_answer"
    assert set(rules.MAGPIE_RULES) >= {"empty_query", "truncated_query", "query_is_answer", "wrong_language"}


def test_params_and_the_api(api):
    with pytest.raises(ValueError, match="not both"):
        MagpieParams(template="chatml", pre_query_template="<|im_start|>user\n")
    job = api.ok("post", "/api/v1/jobs", 201, json={"kind": "magpie", "params": {"target": 5, "n_turns": 3}})
    assert job["kind"] == "magpie" and job["params"]["n_turns"] == 3 and job["params"]["temperature"] == 1.0
    bad = api.post("/api/v1/jobs", json={"kind": "magpie", "params": {"template": "vicuna"}})
    assert bad.status_code == 422 and "template" in bad.text
    bad = api.post("/api/v1/jobs", json={"kind": "magpie", "source_job_id": job["id"]})
    assert bad.status_code == 422 and "source_job_id" in bad.text
