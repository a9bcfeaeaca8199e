"""Daily bill files: golden samples, round trips and malformed rows."""

from __future__ import annotations

import string
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edustream.channels.billfiles import (
    BILL_CHANNELS,
    KINDS,
    MALFORMED,
    MAX_AMOUNT_FEN,
    BillLine,
    parse_bill_file,
    write_bill_file,
)
from edustream.channels.times import BEIJING
from edustream.errors import PoisonError

DAY = date(2024, 9, 2)

# Alipay's 业务明细 file as the trade bill zip holds it: GBK, CR LF, text
# fields ending in a tab. The sample lines run past the width limit because
# they are copied whole, the way the channel writes them.
ALIPAY_SAMPLE = """\
#支付宝业务明细查询\r
#账号：[20881020000000000156]\r
#起始日期：[2024年09月02日 00:00:00]   终止日期：[2024年09月03日 00:00:00]\r
#-----------------------------------------业务明细列表----------------------------------------\r
支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注\r
2024090222001458860515315453\t,FEE20240902000001\t,交易\t,2024秋季学费,2024-09-02 10:55:16,2024-09-02 10:55:23,\t,\t,\t,\t,*三(138****0000)\t,4500.00,4500.00,0.00,0.00,0.00,0.00,0.00,,0.00\t,0.00,\t,0.00,0.00,\r
2024090222001458860515315453\t,FEE20240902000001\t,退款\t,2024秋季学费,2024-09-02 10:55:16,2024-09-02 16:20:48,\t,\t,\t,\t,*三(138****0000)\t,-1250.50,-1250.50,0.00,0.00,0.00,0.00,0.00,,0.00\t,0.00,RF20240902000001\t,0.00,0.00,\r
2024090222001458860513822558\t,FEE20240902000002\t,交易\t,住宿费,2024-09-02 00:00:02,2024-09-02 00:00:05,\t,\t,\t,\t,*四(139****1111)\t,0.01,0.01,0.00,0.00,0.00,0.00,0.00,,0.00\t,0.00,\t,0.00,0.00,\r
#-----------------------------------------业务明细列表结束------------------------------------\r
#交易合计：2笔，商家实收共4500.01元，商家优惠共0.00元\r
#退款合计：1笔，商家实收退款共-1250.50元，商家优惠退款共0.00元\r
#导出时间：[2024年09月03日 05:46:49]\r
""".encode("gbk")  # noqa: E501

# WeChat Pay's ALL trade bill: UTF-8, every data field after a backtick.
WECHAT_SAMPLE = """\
交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注
`2024-09-02 08:35:41,`wx2421b1c4370ec43b,`1900000109,`0,`,`4200002166202409020324636876,`FEE20240902000003,`oVgfJ5d35c6iAXrRCnfhOGF9aHT8,`JSAPI,`SUCCESS,`CMB_DEBIT,`CNY,`6000.00,`0.00,`0,`0,`0.00,`0.00,`,`,`2024秋季学费,住宿费,`{"bill":"B1"},`0.00000,`0.00%,`6000.00,`0.00,`
`2024-09-02 16:47:58,`wx2421b1c4370ec43b,`1900000109,`0,`,`4200002166202409020324636876,`FEE20240902000003,`oVgfJ5d35c6iAXrRCnfhOGF9aHT8,`JSAPI,`REFUND,`CMB_DEBIT,`CNY,`0.00,`0.00,`50302709992024090291956632208,`RF20240902000003,`1200.00,`0.00,`ORIGINAL,`SUCCESS,`2024秋季学费,住宿费,`{"bill":"B1"},`0.00000,`0.00%,`0.00,`1200.00,`
总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额
`2,`6000.00,`1200.00,`0.00,`0.00000,`6000.00,`1200.00
""".encode()  # noqa: E501


def _zm(*fields: bytes) -> bytes:
    """Join hand-padded ZM fields with the one-space separator."""
    return b" ".join(fields)


# UnionPay ZM records, one field per element, each padded by hand to its
# byte width. The refund record is cut after field 41, as some files are.
ZM_PAYMENT = _zm(
    b"S22", b"00049992900", b"00049992900", b"104822", b"0902105516",
    b"6216***********0018", b"000000450000", b"8220", b"07",
    b"772409021055161048228", b"00", b"FEE20240902000004".ljust(32), b"01",
    b" " * 6, b" " * 10, b"D000000000000", b"C000000450000", b"0001",
    b" " * 15, b"01", b"01", b"000201", b"01", b" " * 4, b" " * 32, b"1",
    b" " * 21, b"777290058110048", b" ", b" " * 15,
    "上海市第一中学".encode("gbk").ljust(32), b" " * 13, b"C000000450000",
    b" " * 8, b" " * 32, b" " * 13, b" " * 13, b" " * 12, b"  ", b" ",
    b" " * 32, b" " * 98,
)  # fmt: skip
ZM_REFUND = _zm(
    b"S33", b"00049992900", b"00049992900", b"162048", b"0902162048",
    b"6216***********0018", b"000000125050", b"8220", b"07",
    b"772409021620481620480", b"00", b"RF20240902000004".ljust(32), b"01",
    b"104822", b"0902105516", b"C000000000000", b"D000000125050", b"0001",
    b" " * 15, b"04", b"00", b"000201", b"01", b" " * 4, b" " * 32, b"1",
    b"772409021055161048228", b"777290058110048", b" ", b" " * 15,
    b" " * 32, b" " * 13, b"D000000125050", b" " * 8, b" " * 32, b" " * 13,
    b" " * 13, b" " * 12, b"  ", b" ", b"FEE20240902000004".ljust(32),
)  # fmt: skip
UNIONPAY_SAMPLE = ZM_PAYMENT + b"\r\n" + ZM_REFUND + b"\r\n"


def _utc(year: int, month: int, day: int, *clock: int) -> datetime:
    """A UTC datetime from year, month, day and then hour, minute, second."""
    hour, minute, second = (*clock, 0, 0, 0)[:3]
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_alipay_sample_parses_to_exact_lines() -> None:
    """The Alipay sample yields two payments and a refund, in file order."""
    lines = parse_bill_file("alipay", ALIPAY_SAMPLE)

    assert lines == [
        BillLine(
            "alipay",
            "FEE20240902000001",
            "2024090222001458860515315453",
            "payment",
            450000,
            None,
            _utc(2024, 9, 2, 2, 55, 23),
        ),
        BillLine(
            "alipay",
            "FEE20240902000001",
            "2024090222001458860515315453",
            "refund",
            125050,
            "RF20240902000001",
            _utc(2024, 9, 2, 8, 20, 48),
        ),
        BillLine(
            "alipay",
            "FEE20240902000002",
            "2024090222001458860513822558",
            "payment",
            1,
            None,
            _utc(2024, 9, 1, 16, 0, 5),
        ),
    ]


def test_alipay_sample_is_gbk() -> None:
    """The sample is GBK bytes, as Alipay publishes it, not UTF-8."""
    assert ALIPAY_SAMPLE.startswith(b"#\xd6\xa7\xb8\xb6\xb1\xa6")


def test_wechat_sample_parses_to_exact_lines() -> None:
    """A comma inside a goods name does not shift WeChat's columns."""
    lines = parse_bill_file("wechat", WECHAT_SAMPLE)

    assert lines == [
        BillLine(
            "wechat",
            "FEE20240902000003",
            "4200002166202409020324636876",
            "payment",
            600000,
            None,
            _utc(2024, 9, 2, 0, 35, 41),
        ),
        BillLine(
            "wechat",
            "FEE20240902000003",
            "4200002166202409020324636876",
            "refund",
            120000,
            "RF20240902000003",
            _utc(2024, 9, 2, 8, 47, 58),
        ),
    ]


# The older ALL layout: 总金额 instead of 订单金额, no 申请退款金额.
WECHAT_OLDER_SAMPLE = """\
交易时间,公众账号ID,商户号,子商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,总金额,代金券或立减优惠金额,微信退款单号,商户退款单号,退款金额,代金券或立减优惠退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率
`2016-11-10 16:33:45,`wx2421b1c4370ec43b,`10000100,`0,`1000,`1001690740201411100005734289,`1415640626,`085e9858e3ba5186aafcbaed1,`MICROPAY,`SUCCESS,`OTHERS,`CNY,`0.01,`0.0,`0,`0,`0,`0,`,`,`被扫支付测试,`订单额外描述,`0,`0.60%
`2016-11-10 16:46:14,`wx2421b1c4370ec43b,`10000100,`0,`1000,`1001690740201411100005734289,`1415640626,`085e9858e3ba5186aafcbaed1,`MICROPAY,`REFUND,`OTHERS,`CNY,`0,`0.0,`2008450740201411110000174436,`1415701182,`0.01,`0,`ORIGINAL,`SUCCESS,`被扫支付测试,`订单额外描述,`0,`0.60%
总交易单数,总交易额,总退款金额,总代金券或立减优惠退款金额,手续费总金额
`2,`0.01,`0.01,`0.00,`0.00
""".encode()  # noqa: E501


def test_wechat_older_layout_reads_its_amount_columns() -> None:
    """Files with 总金额 and without 申请退款金额 still give exact fen."""
    lines = parse_bill_file("wechat", WECHAT_OLDER_SAMPLE)

    assert [(line.kind, line.amount_fen, line.refund_id) for line in lines] == [
        ("payment", 1, None),
        ("refund", 1, "1415701182"),
    ]
    assert lines[1].occurred_at == _utc(2016, 11, 10, 8, 46, 14)


def test_unionpay_sample_parses_to_exact_lines() -> None:
    """A refund takes its order and payment numbers from the orig fields."""
    lines = parse_bill_file("unionpay", UNIONPAY_SAMPLE, bill_day=DAY)

    assert lines == [
        BillLine(
            "unionpay",
            "FEE20240902000004",
            "772409021055161048228",
            "payment",
            450000,
            None,
            _utc(2024, 9, 2, 2, 55, 16),
        ),
        BillLine(
            "unionpay",
            "FEE20240902000004",
            "772409021055161048228",
            "refund",
            125050,
            "RF20240902000004",
            _utc(2024, 9, 2, 8, 20, 48),
        ),
    ]


def test_unionpay_payment_record_is_the_documented_width() -> None:
    """A full ZM record is 566 field bytes plus 41 separators."""
    assert len(ZM_PAYMENT) == 607


@pytest.mark.parametrize(
    ("bill_day", "stamp", "expected"),
    [
        (date(2025, 1, 1), b"1231235959", _utc(2024, 12, 31, 15, 59, 59)),
        (date(2024, 12, 31), b"0101000001", _utc(2024, 12, 31, 16, 0, 1)),
        (date(2024, 3, 1), b"0229120000", _utc(2024, 2, 29, 4, 0, 0)),
    ],
)
def test_unionpay_year_is_the_one_nearest_the_bill_day(
    bill_day: date, stamp: bytes, expected: datetime
) -> None:
    """MMDDhhmmss takes the year that puts it nearest the bill day."""
    record = ZM_PAYMENT.replace(b"0902105516", stamp, 1)

    (line,) = parse_bill_file("unionpay", record, bill_day=bill_day)

    assert line.occurred_at == expected


def test_unionpay_without_bill_day_reads_a_fresh_file() -> None:
    """Without a bill day, today's file still gets today's year."""
    today = datetime.now(BEIJING).date()
    moment = datetime.combine(today, time(9, 30), BEIJING).astimezone(UTC)
    line = BillLine("unionpay", "FEE1", "7724", "payment", 100, None, moment)

    assert parse_bill_file("unionpay", write_bill_file("unionpay", today, [line])) == [
        line
    ]


# --- round trips ------------------------------------------------------------

_ID = st.text(string.ascii_letters + string.digits, min_size=1, max_size=21)


@st.composite
def _day_and_lines(draw: st.DrawFn, channel: str) -> tuple[date, list[BillLine]]:
    """A business day and the lines a channel could list for it."""
    day = draw(st.dates(date(2001, 1, 1), date(2099, 12, 31)))
    start = datetime.combine(day, time(), BEIJING)
    count = draw(st.integers(0, 6))

    lines = []
    for _ in range(count):
        kind = draw(st.sampled_from(KINDS))
        second = draw(st.integers(0, 86_399))
        lines.append(
            BillLine(
                channel,
                draw(_ID),
                draw(_ID),
                kind,
                draw(st.integers(1, MAX_AMOUNT_FEN)),
                draw(_ID) if kind == "refund" else None,
                (start + timedelta(seconds=second)).astimezone(UTC),
            )
        )
    return day, lines


@pytest.mark.parametrize("channel", BILL_CHANNELS)
@given(data=st.data())
def test_write_then_parse_returns_the_lines(channel: str, data: st.DataObject) -> None:
    """Every channel's file gives back exactly the lines written into it."""
    day, lines = data.draw(_day_and_lines(channel))

    written = write_bill_file(channel, day, lines)

    assert parse_bill_file(channel, written, bill_day=day) == lines


@given(fen=st.integers(1, MAX_AMOUNT_FEN))
def test_yuan_amounts_convert_to_fen_exactly(fen: int) -> None:
    """Yuan strings in Alipay and WeChat files keep every fen, even 0.01."""
    moment = datetime.combine(DAY, time(12), BEIJING).astimezone(UTC)
    line = BillLine("alipay", "FEE1", "2024", "payment", fen, None, moment)

    (back,) = parse_bill_file("alipay", write_bill_file("alipay", DAY, [line]))

    assert back.amount_fen == fen


def test_written_files_use_each_channel_encoding() -> None:
    """Alipay and UnionPay write GBK, WeChat UTF-8 with backticked fields."""
    moment = datetime.combine(DAY, time(12), BEIJING).astimezone(UTC)
    lines = {
        channel: [BillLine(channel, "FEE1", "7724", "payment", 100, None, moment)]
        for channel in BILL_CHANNELS
    }

    alipay = write_bill_file("alipay", DAY, lines["alipay"])
    wechat = write_bill_file("wechat", DAY, lines["wechat"]).decode()
    unionpay = write_bill_file("unionpay", DAY, lines["unionpay"])

    assert alipay.startswith("#支付宝业务明细查询\r\n".encode("gbk"))
    assert wechat.splitlines()[1].startswith("`2024-09-02 12:00:00,`wx")
    assert wechat.splitlines()[3] == "`1,`1.00,`0.00,`0.00,`0.00000,`1.00,`0.00"
    assert unionpay.endswith(b"\r\n")
    assert len(unionpay) == 607 + 2


# --- refusals ---------------------------------------------------------------


def _line(**changes: object) -> BillLine:
    """A writable Alipay payment on DAY, with some fields changed."""
    fields: dict[str, object] = {
        "channel": "alipay",
        "order_id": "FEE1",
        "channel_txn_id": "2024",
        "kind": "payment",
        "amount_fen": 100,
        "refund_id": None,
        "occurred_at": _utc(2024, 9, 2, 4, 0, 0),
    }
    fields.update(changes)
    return BillLine(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("channel", "line"),
    [
        ("wechat", _line()),
        ("alipay", _line(occurred_at=_utc(2024, 9, 2, 16, 0, 0))),
        ("alipay", _line(order_id="FEE,1")),
        ("alipay", _line(amount_fen=MAX_AMOUNT_FEN + 1)),
        ("unionpay", _line(channel="unionpay", channel_txn_id="7" * 22)),
        ("unionpay", _line(channel="unionpay", order_id="F" * 33)),
    ],
    ids=["other-channel", "other-day", "comma", "too-much", "wide-txn", "wide-order"],
)
def test_write_refuses_lines_the_layout_cannot_hold(
    channel: str, line: BillLine
) -> None:
    """Lines of another channel or day, or unwritable values, are refused."""
    with pytest.raises(ValueError, match=r"bill file|business day|ZM record"):
        write_bill_file(channel, DAY, [line])


@pytest.mark.parametrize(
    "changes",
    [
        {"kind": "void"},
        {"amount_fen": 0},
        {"amount_fen": True},
        {"kind": "refund"},
        {"refund_id": "RF1"},
        {"occurred_at": datetime(2024, 9, 2, 12)},
        {"channel": "paypal"},
    ],
)
def test_bill_line_refuses_impossible_values(changes: dict[str, object]) -> None:
    """A bill line is a positive UTC payment, or a refund with a refund id."""
    with pytest.raises(ValueError, match=r"must|carry|kind|channel"):
        _line(**changes)


def test_parsing_an_unknown_channel_is_a_programming_error() -> None:
    """Asking for a channel without bill files raises ValueError."""
    with pytest.raises(ValueError, match="no daily bill file"):
        parse_bill_file("paypal", b"")


def test_writing_an_unknown_channel_is_a_programming_error() -> None:
    """Asking for a channel without bill files raises ValueError."""
    with pytest.raises(ValueError, match="no daily bill file"):
        write_bill_file("paypal", DAY, [])


# --- malformed files --------------------------------------------------------


def _swap(sample: bytes, old: str, new: str, encoding: str = "gbk") -> bytes:
    """The sample with the first ``old`` replaced, checking it was there."""
    assert old.encode(encoding) in sample
    return sample.replace(old.encode(encoding), new.encode(encoding), 1)


def _lines_of(sample: bytes) -> list[bytes]:
    return sample.split(b"\r\n")


MALFORMED_CASES = [
    (
        "alipay",
        _swap(ALIPAY_SAMPLE, "4500.00,4500.00", "4500.00"),
        6,
        "fields",
    ),
    ("alipay", _swap(ALIPAY_SAMPLE, ",4500.00,", ",4,500.00,"), 6, "fields"),
    ("alipay", _swap(ALIPAY_SAMPLE, "4500.00,", "45e2,"), 6, "订单金额"),
    ("alipay", _swap(ALIPAY_SAMPLE, "交易\t", "转账\t"), 6, "业务类型"),
    ("alipay", _swap(ALIPAY_SAMPLE, "-1250.50,", "1250.50,"), 7, "sign"),
    ("alipay", _swap(ALIPAY_SAMPLE, "RF20240902000001\t", "\t"), 7, "退款批次号"),
    ("alipay", _swap(ALIPAY_SAMPLE, "2024-09-02 16:20:48", "2024/9/2"), 7, "完成时间"),
    (
        "alipay",
        _swap(ALIPAY_SAMPLE, "2024-09-02 16:20:48", "2024-02-30 16:20:48"),
        7,
        "real",
    ),
    ("alipay", _swap(ALIPAY_SAMPLE, "FEE20240902000002\t", "\t"), 8, "商户订单号"),
    ("alipay", _swap(ALIPAY_SAMPLE, "#交易合计：2笔", "#交易合计：3笔"), 10, "count"),
    (
        "alipay",
        _swap(ALIPAY_SAMPLE, "商户订单号,业务类型", "订单号,业务类型"),
        5,
        "header",
    ),
    (
        "alipay",
        ALIPAY_SAMPLE.split(
            "#-----------------------------------------业务明细列表结束".encode("gbk")
        )[0],
        8,
        "end marker",
    ),
    ("alipay", b"\xff\xff\r\n" + ALIPAY_SAMPLE, 1, "not gb18030"),
    ("alipay", b"extra,row\r\n" + ALIPAY_SAMPLE, 1, "before the list"),
    ("alipay", b"", 1, "no list start"),
    ("wechat", _swap(WECHAT_SAMPLE, "`SUCCESS", "`REVOKED", "utf-8"), 2, "交易状态"),
    (
        "wechat",
        _swap(WECHAT_SAMPLE, "`2024-09-02 08:35:41", "2024-09-02 08:35:41", "utf-8"),
        2,
        "backtick",
    ),
    (
        "wechat",
        _swap(WECHAT_SAMPLE, ",`0.00%,`6000.00", ",`0.00%", "utf-8"),
        2,
        "fields",
    ),
    (
        "wechat",
        _swap(WECHAT_SAMPLE, "%,`6000.00,", "%,`6000.001,", "utf-8"),
        2,
        "订单金额 is not",
    ),
    (
        "wechat",
        _swap(WECHAT_SAMPLE, "`RF20240902000003", "`", "utf-8"),
        3,
        "商户退款单号",
    ),
    (
        "wechat",
        _swap(WECHAT_SAMPLE, "`2024-09-02 16:47:58", "`16:47:58", "utf-8"),
        3,
        "交易时间",
    ),
    (
        "wechat",
        _swap(WECHAT_SAMPLE, "`2,`6000.00", "`3,`6000.00", "utf-8"),
        5,
        "总交易单数",
    ),
    ("wechat", WECHAT_SAMPLE.split("总交易单数".encode())[0], 3, "summary"),
    ("wechat", WECHAT_SAMPLE + b"`extra\n", 6, "after the summary"),
    ("wechat", _swap(WECHAT_SAMPLE, "微信订单号,", "", "utf-8"), 1, "header"),
    ("wechat", b"", 1, "empty"),
    ("unionpay", ZM_PAYMENT[:500] + b"\r\n", 1, "bytes"),
    (
        "unionpay",
        ZM_PAYMENT + b"\r\n" + ZM_PAYMENT.replace(b"S22 ", b"S22-", 1),
        2,
        "space",
    ),
    ("unionpay", ZM_PAYMENT.replace(b" 01 01 000201", b" 02 01 000201"), 1, "交易类型"),
    (
        "unionpay",
        ZM_PAYMENT.replace(b"000000450000", b"00000045000X", 1),
        1,
        "交易金额",
    ),
    ("unionpay", ZM_PAYMENT.replace(b"000000450000", b"000000000000", 1), 1, "zero"),
    ("unionpay", ZM_PAYMENT.replace(b"0902105516", b"1302105516"), 1, "交易传输时间"),
    (
        "unionpay",
        ZM_REFUND.replace(b"FEE20240902000004", b" " * 17),
        1,
        "原始交易订单号",
    ),
    (
        "unionpay",
        ZM_REFUND.replace(b"772409021055161048228", b" " * 21),
        1,
        "原交易查询流水号",
    ),
    ("unionpay", ZM_PAYMENT.replace(b"FEE20240902000004", b"\xff" * 17), 1, "GBK"),
]


@pytest.mark.parametrize(("channel", "data", "line_number", "words"), MALFORMED_CASES)
def test_malformed_rows_are_poison_naming_the_line(
    channel: str, data: bytes, line_number: int, words: str
) -> None:
    """A row that breaks the layout is poison; the message names its line."""
    with pytest.raises(PoisonError) as caught:
        parse_bill_file(channel, data, bill_day=DAY)

    assert caught.value.reason == MALFORMED
    assert f"line {line_number}:" in str(caught.value)
    assert words in str(caught.value)


@pytest.mark.parametrize(("channel", "data", "line_number", "words"), MALFORMED_CASES)
def test_malformed_messages_carry_no_field_values(
    channel: str, data: bytes, line_number: int, words: str
) -> None:
    """Order, trade and refund numbers, amounts and buyers stay out."""
    with pytest.raises(PoisonError) as caught:
        parse_bill_file(channel, data, bill_day=DAY)

    message = str(caught.value)
    for value in ("FEE2024", "RF2024", "42000021", "20240902220014", "7724090",
                  "4500", "6000", "1250", "138****", "6216"):  # fmt: skip
        assert value not in message
