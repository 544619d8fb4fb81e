"""Several bot processes on one Redis behave as one bot (REDIS_URL; issue 6 part 1, issue 3 part 5):
the conversation, the flood limit and the order of one user's steps are shared, whichever process
Telegram (or the load balancer in front of webhook workers) hands an update to."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.redis.conftest import Chat, Proc

THROTTLED = "您发得太快了，请稍等几秒再试。"
STALE = "这次材料自查已结束，请在办事指南下重新点“材料自查”。"


def setup(procs: tuple[Proc, Proc], throttle_rate: float = 0, latency: float = 0) -> tuple[Proc, Proc]:
    for p in procs:
        p.configure(throttle_rate=throttle_rate, latency=latency)
    return procs


def test_follow_up_is_answered_by_another_process(procs: tuple[Proc, Proc], chat: Chat) -> None:
    a, b = setup(procs)
    chat.say(a, "食品经营许可证核发")
    assert "食品经营许可申请书" in chat.text()
    chat.say(b, "要多少钱")
    assert chat.text().startswith("食品经营许可证核发") and "免费" in chat.text()
    chat.say(a, "那结婚登记要多少钱")
    chat.say(b, "多久能办好")
    assert chat.text().startswith("结婚登记") and "即办" in chat.text()
    # Someone else asking B the same has no context: the state is per user, not per process.
    stranger = Chat()
    stranger.say(b, "要多少钱")
    assert "请先告诉我您要办什么事" in stranger.text()


def test_self_check_walk_alternating_processes(procs: tuple[Proc, Proc], chat: Chat) -> None:
    a, b = setup(procs)
    chat.say(a, "食品经营许可证核发")
    chat.press(b, "材料自查")
    assert "（1/4）" in chat.text()
    for proc, answer in ((a, "有"), (b, "没有"), (a, "有")):
        chat.press(proc, answer)
    assert "（4/4）" in chat.text()
    chat.press(b, "没有")
    result = chat.text()
    assert "还缺以下 2 项材料" in result and "营业执照" in result and "从业人员健康证明" in result
    assert "其余 2 项已备齐" in result


def test_flood_over_two_processes_is_throttled_as_one_user(procs: tuple[Proc, Proc], chat: Chat) -> None:
    # One message per 60 s after a burst of 5: nothing refills while the test runs.
    a, b = setup(procs, throttle_rate=60)
    replies = [chat.say((a, b)[i % 2], "结婚登记") for i in range(12)]
    answered = [r for r in replies if any("结婚登记" in t for t in chat.texts(r))]
    warned = [r for r in replies if chat.texts(r) == [THROTTLED]]
    assert len(answered) == 5  # one bucket; a bucket per process would answer 10
    assert len(warned) == 1  # told once, then silence: a flood must not make the bot flood back
    assert sum(1 for r in replies if r) == 6
    other = Chat()
    other.say(b, "结婚登记")
    assert "结婚登记" in other.text()  # per user: nobody else is slowed down


def test_double_press_on_two_processes_counts_once(procs: tuple[Proc, Proc], chat: Chat) -> None:
    # Every Bot API call takes 0.2 s, as a real Telegram round trip may: the handler reads the walk's
    # step, answers the button press, then writes the next step. Without a per-user lock in Redis
    # both processes would read the same step and both move on.
    a, b = setup(procs, latency=0.2)
    chat.say(a, "结婚登记")
    chat.press(a, "材料自查")
    assert "（1/3）" in chat.text()
    have, lack = chat.button("有"), chat.button("没有")
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.submit(a.send, have), pool.submit(b.send, lack)
        replies = [first.result(), second.result()]
    alerts = [[s.get("text") or "" for s in r if s["method"] == "AnswerCallbackQuery"] for r in replies]
    assert sorted(alerts) == [[""], [STALE]]  # one press moved the walk on, the other was refused
    moved = next(r for r, alert in zip(replies, alerts, strict=True) if alert == [""])
    chat.keep(moved)
    assert "（2/3）" in chat.text()
    chat.press(b, "有")
    chat.press(a, "有")
    # Exactly the accepted answer for material 1 counts: "没有" -> one missing, "有" -> complete.
    if moved is replies[1]:
        assert "还缺以下 1 项材料" in chat.text() and "双方户口簿" in chat.text()
    else:
        assert "材料齐全" in chat.text()
