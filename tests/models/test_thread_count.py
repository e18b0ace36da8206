"""Issue 11, defect 8 (second half): the one-thread regions (a few prompts in torch, single FAISS queries) are
set and restored under one lock with a count, so concurrent dashboard sessions cannot interleave a
save/set/restore: inside, one thread; after the last session leaves, the count it started with."""

from __future__ import annotations

import threading

import torch


def test_many_sessions_end_where_they_started() -> None:
    from pedclip.threads import thread_count

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        wrong: list[int] = []

        def session() -> None:
            for _ in range(50):
                with thread_count("torch").limit(1):
                    if torch.get_num_threads() != 1:
                        wrong.append(torch.get_num_threads())

        threads = [threading.Thread(target=session) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not wrong and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
