"""Every user-guide process with the arguments and options it is run with in tests."""

from __future__ import annotations

from typing import Any

from examples import user_guide
from tasktronaut import ProcessDefinition

GuideCase = tuple[type[ProcessDefinition], dict[str, Any], dict[str, bool]]

GUIDE: list[GuideCase] = [
    (user_guide.MyProcess, {}, {}),
    (user_guide.SequentialProcess, {}, {}),
    (user_guide.ConcurrentProcess, {}, {}),
    (user_guide.MixedProcess, {}, {}),
    (
        user_guide.ProcessWithArguments,
        {
            "name": "report",
            "count": "3",
            "date": "2026-11-29",
            "tags": ["a", "b"],
            "data": {"k": 1},
        },
        {},
    ),
    (
        user_guide.ProcessWithSensitiveArguments,
        {"username": "ada", "password": "correct horse", "api_token": "tok-123456"},
        {},
    ),
    (user_guide.ConditionalProcess, {}, {}),
    (user_guide.ConditionalProcess, {}, {"enable_validation": True, "enable_logging": False}),
    (user_guide.IterativeProcess, {"files": ["a.csv", "b.csv", "c.csv"]}, {}),
    (user_guide.IterativeProcessWithDescriptions, {"files": ["a.csv", "b.csv"]}, {}),
    (user_guide.TransformingProcess, {"raw_data": "hello"}, {}),
    (user_guide.TransformingProcessWithDescription, {"item_id": 21}, {}),
    (user_guide.ValidationProcess, {}, {}),
    (user_guide.MainProcess, {}, {}),
    (user_guide.ComplexProcess, {"items": [f"item-{i}" for i in range(25)]}, {}),
]

GUIDE_IDS = [f"{definition.__name__}-{index}" for index, (definition, _, _) in enumerate(GUIDE)]
