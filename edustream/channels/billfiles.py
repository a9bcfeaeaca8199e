"""The payment channels' daily bill files (对账单), read and written.

Each channel publishes, the morning after a business day, a file listing
every payment and refund it settled that day. A callback that never arrived
shows up as a line in that file with no payment of ours to match.

Duties:

- ``BillLine``: one payment or refund as a channel's bill reports it, money
  in integer fen and the time as a UTC datetime;
- ``parse_bill_file``: read a channel's file strictly. Any row we cannot read
  raises ``PoisonError(reason="malformed_bill_file")`` whose message names
  the line number and the field, never a field's value;
- ``write_bill_file``: render lines in the channel's real layout and
  encoding, for the synthetic channels of the demo and the tests.

Identity, the same for every channel (as in ``NormalisedCallback``):
``order_id`` is our order number; ``channel_txn_id`` is the channel's number
of the *payment*, so a refund line carries the number of the payment it
reverses; ``refund_id`` is our refund request number, present on refund
lines only.

The layouts, and the subset of fields read:

- Alipay trade bill (``bill_type=trade``), the ``..._业务明细.csv`` file in
  the daily zip, GBK. ``#`` lines come before the list (title, account,
  date range, start marker) and after it (end marker, trade and refund
  totals, export time). Fields are unquoted and comma separated, and text
  fields end in a tab so spreadsheets keep long numbers as text. Columns are
  found by header name: 支付宝交易号, 商户订单号, 业务类型 (交易 or 退款),
  完成时间, 订单金额（元）, 退款批次号/请求号. A refund row repeats the
  trade and order numbers, has negative amounts and carries our
  ``out_request_no``; its 完成时间 is the refund time.
- WeChat Pay trade bill, ``bill_type=ALL``, UTF-8. A header row, one row per
  payment or refund with every field prefixed by a backtick, then a summary
  header and a summary row. Columns are found by header name: 交易时间,
  微信订单号, 商户订单号, 交易状态 (SUCCESS or REFUND), 订单金额 (总金额
  in older files), 商户退款单号, 申请退款金额 (退款金额 in older files).
- UnionPay merchant flow file (the ZM file in the daily zip), GBK. One
  fixed-width record per line, fields separated by one space, 42 fields with
  the byte widths of section 6.1 of the file interface specification
  (全渠道平台接入接口规范 第3部分 文件接口), as UnionPay's demo SDK cuts
  them. Read: 交易传输时间 (field 5, MMDDhhmmss Beijing time), 交易金额 (7,
  fen), 查询流水号 (10), 商户订单号 (12), 交易类型 (20: 01 consume, 04
  refund, 31 consume void), 原交易查询流水号 (27) and 原始交易订单号 (41).
  On a refund, field 12 is the refund's own order number (our
  ``refund_id``) and field 41 the paid order's. The writer also fills the
  fee, settlement amount, sub-type, business type and merchant number, and
  leaves the other fields blank. The record has no year, so the parser
  takes the year nearest the bill day.

What is not publicly documented and is therefore our own: the code table of
UnionPay's 交易代码 (field 1, note 1 of the specification) is not in the
public sources we found. The writer fills S22 (consume) and S33 (refund) and
the parser ignores the field, reading 交易类型 instead.

A ``BillLine`` does not carry some numbers a real file has: WeChat's own
refund number, UnionPay's query id of a refund, WeChat's payer openid. The
writer fills them with digits derived from the line, and the parser ignores
them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from edustream.channels.money import fen_text_to_fen, fen_to_yuan, yuan_to_fen
from edustream.channels.normalised import Channel
from edustream.channels.times import BEIJING
from edustream.errors import PoisonError

Kind = Literal["payment", "refund"]
KINDS: tuple[Kind, ...] = ("payment", "refund")
BILL_CHANNELS: tuple[str, ...] = (Channel.ALIPAY, Channel.WECHAT, Channel.UNIONPAY)
MALFORMED = "malformed_bill_file"

# Twelve digits of fen is the widest amount UnionPay's record can hold and
# far above any school fee; one bound for all channels keeps round trips.
MAX_AMOUNT_FEN = 999_999_999_999

# Order, trade and refund numbers as the channels accept them. Anything else
# (commas, tabs, backticks, non-ASCII) would break the file's layout.
_WRITABLE_ID = re.compile(r"[0-9A-Za-z_\-|*]{1,64}", re.ASCII)
_LOCAL_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})", re.ASCII
)
_LOCAL_FORMAT = "%Y-%m-%d %H:%M:%S"

# GBK files are read as GB18030, its superset: a channel that slips a rare
# character into a goods name must not make the whole day unreadable.
_GBK_READ = "gb18030"
_GBK_WRITE = "gbk"


@dataclass(frozen=True, slots=True)
class BillLine:
    """One payment or refund as a channel's daily bill reports it."""

    channel: str
    order_id: str
    channel_txn_id: str
    kind: Kind
    amount_fen: int
    refund_id: str | None
    occurred_at: datetime

    def __post_init__(self) -> None:
        """Refuse a line no bill file could hold, whoever builds it."""
        if self.channel not in BILL_CHANNELS:
            raise ValueError("channel has no daily bill file")
        if self.kind not in KINDS:
            raise ValueError("kind is payment or refund")
        if not self.order_id or not self.channel_txn_id:
            raise ValueError("order_id and channel_txn_id are required")

        if type(self.amount_fen) is not int or self.amount_fen <= 0:
            raise ValueError("amount_fen must be a positive int")
        if (self.kind == "refund") != bool(self.refund_id):
            raise ValueError("refund lines, and only they, carry a refund_id")
        if self.occurred_at.utcoffset() != timedelta(0):
            raise ValueError("occurred_at must be a UTC-aware datetime")


def parse_bill_file(
    channel: str, data: bytes, *, bill_day: date | None = None
) -> list[BillLine]:
    """Return every line of a channel's daily bill file, in file order.

    ``bill_day`` is the business day the file covers. Only UnionPay needs it,
    to put a year on its MMDDhhmmss times; without it the year nearest
    today in Shanghai is taken, which is right for any file under six
    months old.

    Raises ``PoisonError(reason="malformed_bill_file")`` for a row that does
    not fit the layout, and ``ValueError`` for a channel with no bill file.
    """
    parser = _PARSERS.get(channel)
    if parser is None:
        raise ValueError("channel has no daily bill file")

    reference = bill_day or datetime.now(BEIJING).date()
    try:
        return parser(data, reference)
    except _RowError as fault:
        message = f"{channel} bill file, line {fault.number}: {fault.what}"
        raise PoisonError(MALFORMED, message) from None


def write_bill_file(channel: str, day: date, lines: list[BillLine]) -> bytes:
    """Return the bill file ``channel`` would publish for ``day``.

    Every line must belong to ``channel`` and fall on ``day`` in Shanghai.
    Times keep whole seconds, as the files do. Raises ``ValueError`` for a
    line the layout cannot hold.
    """
    writer = _WRITERS.get(channel)
    if writer is None:
        raise ValueError("channel has no daily bill file")

    for line in lines:
        _check_writable(channel, day, line)

    return writer(day, lines)


# --- shared steps -----------------------------------------------------------


class _RowError(Exception):
    """A row that does not fit the layout: where, and what, never a value."""

    def __init__(self, what: str, number: int = 0) -> None:
        super().__init__(what)
        self.what = what
        self.number = number

    def at(self, number: int) -> _RowError:
        """The same fault, placed on a line of the file."""
        return _RowError(self.what, number)


def _decoded_lines(data: bytes, encoding: str) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) for every non-blank line of the file.

    Splitting the bytes before decoding is safe: in GBK and UTF-8 the byte
    0x0A only ever stands for a line feed.
    """
    for number, raw in _raw_lines(data):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            raise _RowError(f"not {encoding} text", number) from None
        yield number, text.removeprefix("\ufeff")


def _raw_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Yield (line number, bytes) for every non-blank line, CR LF or LF."""
    for number, raw in enumerate(data.split(b"\n"), start=1):
        line = raw.removesuffix(b"\r")
        if line.strip():
            yield number, line


def _column_index(
    header: Sequence[str], wanted: Sequence[str], number: int
) -> dict[str, int]:
    """Map each wanted column name to its position in the header row."""
    positions = {name: index for index, name in enumerate(header)}
    missing = [name for name in wanted if name not in positions]
    if missing:
        raise _RowError(f"header row lacks column {missing[0]}", number)
    return {name: positions[name] for name in wanted}


def _local_moment(text: str, field: str) -> datetime:
    """Read ``YYYY-MM-DD hh:mm:ss`` Beijing time as a UTC datetime."""
    match = _LOCAL_TIME.fullmatch(text)
    if match is None:
        raise _RowError(f"{field} is not a YYYY-MM-DD hh:mm:ss time")

    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    try:
        naive = datetime(year, month, day, hour, minute, second)
    except ValueError:
        raise _RowError(f"{field} is not a real time") from None
    return naive.replace(tzinfo=BEIJING).astimezone(UTC)


def _local_text(moment: datetime) -> str:
    """Write a UTC datetime as the channels do: Beijing time, whole seconds."""
    return moment.astimezone(BEIJING).strftime(_LOCAL_FORMAT)


def _fen(text: str, field: str) -> int:
    """Read a non-negative yuan string as fen, naming only the field."""
    try:
        return yuan_to_fen(text)
    except PoisonError:
        raise _RowError(f"{field} is not a yuan amount") from None


def _required(text: str, field: str) -> str:
    """Return a field that must not be empty."""
    if not text:
        raise _RowError(f"{field} is empty")
    return text


def _stand_in(length: int, *parts: str) -> str:
    """Digits derived from ``parts``, for numbers a BillLine does not carry."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return str(int(digest, 16))[:length].zfill(length)


def _check_writable(channel: str, day: date, line: BillLine) -> None:
    """Refuse a line the channel's file for ``day`` could not hold."""
    if line.channel != channel:
        raise ValueError("a bill file holds one channel's lines")
    if line.occurred_at.astimezone(BEIJING).date() != day:
        raise ValueError("line falls outside the bill's business day")
    if line.amount_fen > MAX_AMOUNT_FEN:
        raise ValueError("amount_fen is too large for a bill file")

    for value in (line.order_id, line.channel_txn_id, line.refund_id or "0"):
        if not _WRITABLE_ID.fullmatch(value):
            raise ValueError("identifier cannot be written into a bill file")

    if channel == Channel.UNIONPAY:
        _check_unionpay_widths(line)


def _yuan(fen: int) -> str:
    """Write signed fen as a yuan string with two decimals."""
    sign = "-" if fen < 0 else ""
    return sign + fen_to_yuan(abs(fen))


def _cn_date(moment: datetime) -> str:
    """Write a Beijing time in the Alipay header style."""
    return moment.strftime("%Y年%m月%d日 %H:%M:%S")


# --- Alipay -----------------------------------------------------------------

_ALIPAY_COLUMNS = (
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "商品名称",
    "创建时间",
    "完成时间",
    "门店编号",
    "门店名称",
    "操作员",
    "终端号",
    "对方账户",
    "订单金额（元）",
    "商家实收（元）",
    "支付宝红包（元）",
    "集分宝（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "券核销金额（元）",
    "券名称",
    "商家红包消费金额（元）",
    "卡消费金额（元）",
    "退款批次号/请求号",
    "服务费（元）",
    "分润（元）",
    "备注",
)
_ALIPAY_READ = (
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "完成时间",
    "订单金额（元）",
    "退款批次号/请求号",
)
_ALIPAY_KINDS: dict[str, Kind] = {"交易": "payment", "退款": "refund"}
_ALIPAY_LIST = "业务明细列表"
_ALIPAY_LIST_END = "业务明细列表结束"
_ALIPAY_TOTALS = (
    ("payment", re.compile(r"#交易合计：([0-9]+)笔")),
    ("refund", re.compile(r"#退款合计：([0-9]+)笔")),
)
# The test merchant's partner id; the file's account adds Alipay's "0156".
_ALIPAY_ACCOUNT = "20881020000000000156"
_ALIPAY_GOODS = "学校收费"


def _parse_alipay(data: bytes, reference: date) -> list[BillLine]:
    """Read Alipay's 业务明细 file: preamble, list, totals."""
    lines = list(_decoded_lines(data, _GBK_READ))
    start = _alipay_list_start(lines)

    header_number, header_text = lines[start]
    header = [name.strip() for name in header_text.split(",")]
    columns = _column_index(header, _ALIPAY_READ, header_number)

    rows, end = _alipay_rows(lines, start + 1, len(header), columns)

    _check_alipay_totals(lines[end + 1 :], rows)
    return rows


def _alipay_marker(text: str) -> str | None:
    """The words of a ``#-----…-----`` marker line, else ``None``."""
    if not text.startswith("#-"):
        return None
    return text.strip().strip("#-")


def _alipay_list_start(lines: list[tuple[int, str]]) -> int:
    """Index of the header row, after the ``#`` preamble and start marker."""
    for index, (number, text) in enumerate(lines):
        if not text.startswith("#"):
            raise _RowError("row before the list start marker", number)
        if _alipay_marker(text) == _ALIPAY_LIST:
            if index + 1 == len(lines):
                raise _RowError("file ends after the list start marker", number)
            return index + 1

    raise _RowError("no list start marker", lines[-1][0] if lines else 1)


def _alipay_rows(
    lines: list[tuple[int, str]], first: int, width: int, columns: dict[str, int]
) -> tuple[list[BillLine], int]:
    """Read data rows up to the end marker; return them and its index."""
    rows: list[BillLine] = []
    for index in range(first, len(lines)):
        number, text = lines[index]
        if text.startswith("#"):
            if _alipay_marker(text) != _ALIPAY_LIST_END:
                raise _RowError("comment line inside the list", number)
            return rows, index

        fields = [field.strip("\t ") for field in text.split(",")]
        if len(fields) != width:
            raise _RowError(f"row has {len(fields)} fields, header {width}", number)
        try:
            rows.append(_alipay_line(fields, columns))
        except _RowError as fault:
            raise fault.at(number) from None

    raise _RowError("file ends before the list end marker", lines[-1][0])


def _alipay_line(fields: list[str], columns: dict[str, int]) -> BillLine:
    """Turn one 业务明细 row into a bill line."""
    value = {name: fields[index] for name, index in columns.items()}
    kind = _ALIPAY_KINDS.get(value["业务类型"])
    if kind is None:
        raise _RowError("业务类型 is neither 交易 nor 退款")

    amount_text = value["订单金额（元）"]
    negative = amount_text.startswith("-")
    if negative != (kind == "refund"):
        raise _RowError("订单金额（元） has the wrong sign for 业务类型")
    amount = _fen(amount_text.removeprefix("-"), "订单金额（元）")

    refund_id = None
    if kind == "refund":
        refund_id = _required(value["退款批次号/请求号"], "退款批次号/请求号")

    return _bill_line(
        Channel.ALIPAY,
        order_id=_required(value["商户订单号"], "商户订单号"),
        channel_txn_id=_required(value["支付宝交易号"], "支付宝交易号"),
        kind=kind,
        amount_fen=amount,
        refund_id=refund_id,
        occurred_at=_local_moment(value["完成时间"], "完成时间"),
    )


def _check_alipay_totals(footer: list[tuple[int, str]], rows: list[BillLine]) -> None:
    """Check the ``#`` lines after the list, and the counts they give."""
    for number, text in footer:
        if not text.startswith("#"):
            raise _RowError("row after the list end marker", number)

        for kind, pattern in _ALIPAY_TOTALS:
            match = pattern.match(text)
            counted = sum(1 for row in rows if row.kind == kind)
            if match and int(match.group(1)) != counted:
                raise _RowError(f"{kind} count differs from the rows", number)


def _write_alipay(day: date, lines: list[BillLine]) -> bytes:
    """Render Alipay's 业务明细 file for ``day``."""
    start = datetime.combine(day, time(), BEIJING)
    payments = [line.amount_fen for line in lines if line.kind == "payment"]
    refunds = [line.amount_fen for line in lines if line.kind == "refund"]
    rule = "#" + "-" * 41

    text = [
        "#支付宝业务明细查询",
        f"#账号：[{_ALIPAY_ACCOUNT}]",
        f"#起始日期：[{_cn_date(start)}]"
        f"   终止日期：[{_cn_date(start + timedelta(days=1))}]",
        f"{rule}{_ALIPAY_LIST}{'-' * 40}",
        ",".join(_ALIPAY_COLUMNS),
        *(_alipay_row(line) for line in lines),
        f"{rule}{_ALIPAY_LIST_END}{'-' * 36}",
        f"#交易合计：{len(payments)}笔，商家实收共{_yuan(sum(payments))}元，"
        "商家优惠共0.00元",
        f"#退款合计：{len(refunds)}笔，商家实收退款共{_yuan(-sum(refunds))}元，"
        "商家优惠退款共0.00元",
        f"#导出时间：[{_cn_date(start + timedelta(days=1, hours=6))}]",
    ]
    return "".join(f"{row}\r\n" for row in text).encode(_GBK_WRITE)


def _alipay_row(line: BillLine) -> str:
    """One 业务明细 row; text fields end in a tab, as Alipay writes them."""
    signed = -line.amount_fen if line.kind == "refund" else line.amount_fen
    amount = _yuan(signed)
    when = _local_text(line.occurred_at)
    business = "退款" if line.kind == "refund" else "交易"

    fields = [
        f"{line.channel_txn_id}\t",
        f"{line.order_id}\t",
        f"{business}\t",
        _ALIPAY_GOODS,
        when,
        when,
        *["\t"] * 5,
        amount,
        amount,
        *["0.00"] * 5,
        "",
        "0.00\t",
        "0.00",
        f"{line.refund_id or ''}\t",
        "0.00",
        "0.00",
        "",
    ]
    return ",".join(fields)


# --- WeChat Pay -------------------------------------------------------------

_WECHAT_COLUMNS = (
    "交易时间",
    "公众账号ID",
    "商户号",
    "特约商户号",
    "设备号",
    "微信订单号",
    "商户订单号",
    "用户标识",
    "交易类型",
    "交易状态",
    "付款银行",
    "货币种类",
    "应结订单金额",
    "代金券金额",
    "微信退款单号",
    "商户退款单号",
    "退款金额",
    "充值券退款金额",
    "退款类型",
    "退款状态",
    "商品名称",
    "商户数据包",
    "手续费",
    "费率",
    "订单金额",
    "申请退款金额",
    "费率备注",
)
_WECHAT_SUMMARY = (
    "总交易单数",
    "应结订单总金额",
    "退款总金额",
    "充值券退款总金额",
    "手续费总金额",
    "订单总金额",
    "申请退款总金额",
)
_WECHAT_READ = ("交易时间", "微信订单号", "商户订单号", "交易状态", "商户退款单号")
# Newer files name the order and refund amounts first; older ones second.
_WECHAT_ORDER_AMOUNT = ("订单金额", "总金额")
_WECHAT_REFUND_AMOUNT = ("申请退款金额", "退款金额")
_WECHAT_KINDS: dict[str, Kind] = {"SUCCESS": "payment", "REFUND": "refund"}
# The test merchant: WeChat's documented sample merchant number.
_WECHAT_APP_ID = "wx2421b1c4370ec43b"
_WECHAT_MERCHANT = "1900000109"
_WECHAT_GOODS = "学校收费"


def _parse_wechat(data: bytes, reference: date) -> list[BillLine]:
    """Read WeChat Pay's ALL trade bill: header, rows, summary."""
    lines = list(_decoded_lines(data, "utf-8"))
    if not lines:
        raise _RowError("file is empty", 1)

    header_number, header_text = lines[0]
    header = [name.strip() for name in header_text.split(",")]
    columns = _wechat_columns(header, header_number)

    rows: list[BillLine] = []
    for index in range(1, len(lines)):
        number, text = lines[index]
        if text.startswith(_WECHAT_SUMMARY[0]):
            _check_wechat_summary(lines[index:], len(rows))
            return rows
        fields = _wechat_fields(text, len(header), number)
        try:
            rows.append(_wechat_line(fields, columns))
        except _RowError as fault:
            raise fault.at(number) from None

    raise _RowError("file ends before the summary", lines[-1][0])


def _wechat_columns(header: list[str], number: int) -> dict[str, int]:
    """Positions of the read columns, choosing the amount columns present."""
    columns = _column_index(header, _WECHAT_READ, number)
    for names in (_WECHAT_ORDER_AMOUNT, _WECHAT_REFUND_AMOUNT):
        present = [name for name in names if name in header]
        if not present:
            raise _RowError(f"header row lacks column {names[0]}", number)
        columns[present[0]] = header.index(present[0])
    return columns


def _wechat_fields(text: str, width: int, number: int) -> list[str]:
    """Split a row whose every field starts with a backtick.

    Splitting on comma-backtick keeps a comma inside a goods name or a
    merchant data package from shifting the columns.
    """
    if not text.startswith("`"):
        raise _RowError("row field lacks its backtick", number)

    fields = text[1:].split(",`")
    if len(fields) != width:
        raise _RowError(f"row has {len(fields)} fields, header {width}", number)
    return fields


def _wechat_line(fields: list[str], columns: dict[str, int]) -> BillLine:
    """Turn one ALL-bill row into a bill line."""
    kind = _WECHAT_KINDS.get(fields[columns["交易状态"]])
    if kind is None:
        raise _RowError("交易状态 is neither SUCCESS nor REFUND")

    refund_id = None
    if kind == "refund":
        refund_id = _required(fields[columns["商户退款单号"]], "商户退款单号")
    names = _WECHAT_ORDER_AMOUNT if kind == "payment" else _WECHAT_REFUND_AMOUNT
    amount_name = next(name for name in names if name in columns)
    amount = _fen(fields[columns[amount_name]], amount_name)

    return _bill_line(
        Channel.WECHAT,
        order_id=_required(fields[columns["商户订单号"]], "商户订单号"),
        channel_txn_id=_required(fields[columns["微信订单号"]], "微信订单号"),
        kind=kind,
        amount_fen=amount,
        refund_id=refund_id,
        occurred_at=_local_moment(fields[columns["交易时间"]], "交易时间"),
    )


def _check_wechat_summary(lines: list[tuple[int, str]], row_count: int) -> None:
    """Check the summary header, the summary row, and the row count in it."""
    header_number, header_text = lines[0]
    header = [name.strip() for name in header_text.split(",")]
    if len(lines) == 1:
        raise _RowError("file ends after the summary header", header_number)
    if len(lines) > 2:
        raise _RowError("row after the summary", lines[2][0])

    number, text = lines[1]
    summary = _wechat_fields(text, len(header), number)
    count = summary[0]
    if not count.isdigit() or int(count) != row_count:
        raise _RowError("总交易单数 differs from the rows", number)


def _write_wechat(day: date, lines: list[BillLine]) -> bytes:
    """Render WeChat Pay's ALL trade bill for ``day``."""
    payments = sum(line.amount_fen for line in lines if line.kind == "payment")
    refunds = sum(line.amount_fen for line in lines if line.kind == "refund")
    summary = [
        str(len(lines)),
        fen_to_yuan(payments),
        fen_to_yuan(refunds),
        "0.00",
        "0.00000",
        fen_to_yuan(payments),
        fen_to_yuan(refunds),
    ]

    text = [
        ",".join(_WECHAT_COLUMNS),
        *(_backticked(_wechat_row(line)) for line in lines),
        ",".join(_WECHAT_SUMMARY),
        _backticked(summary),
    ]
    return "".join(f"{row}\r\n" for row in text).encode("utf-8")


def _backticked(fields: list[str]) -> str:
    """Join fields with a backtick before each, as WeChat writes them."""
    return ",".join(f"`{field}" for field in fields)


def _wechat_row(line: BillLine) -> list[str]:
    """One ALL-bill row: a payment, or a refund of an earlier payment."""
    refund = line.kind == "refund"
    amount = fen_to_yuan(line.amount_fen)
    openid = "o" + _stand_in(27, line.order_id)
    head = [
        _local_text(line.occurred_at),
        _WECHAT_APP_ID,
        _WECHAT_MERCHANT,
        "0",
        "",
        line.channel_txn_id,
        line.order_id,
        openid,
        "JSAPI",
        "REFUND" if refund else "SUCCESS",
        "OTHERS",
        "CNY",
    ]
    if refund:
        refund_id = line.refund_id or ""
        wechat_refund_no = "50" + _stand_in(27, line.channel_txn_id, refund_id)
        money = ["0.00", "0.00", wechat_refund_no, refund_id, amount]
        tail = ["0.00", "ORIGINAL", "SUCCESS", _WECHAT_GOODS, "", "0.00000"]
        return [*head, *money, *tail, "0.00%", "0.00", amount, ""]

    money = [amount, "0.00", "0", "0", "0.00"]
    tail = ["0.00", "", "", _WECHAT_GOODS, "", "0.00000"]
    return [*head, *money, *tail, "0.00%", amount, "0.00", ""]


# --- UnionPay ---------------------------------------------------------------

# Byte widths of the 42 fields of a ZM record (file interface spec 6.1).
_ZM_WIDTHS = (
    3, 11, 11, 6, 10, 19, 12, 4, 2, 21, 2, 32, 2, 6, 10, 13, 13, 4, 15, 2, 2,
    6, 2, 4, 32, 1, 21, 15, 1, 15, 32, 13, 13, 8, 32, 13, 13, 12, 2, 1, 32, 98,
)  # fmt: skip
_ZM_STARTS = tuple(sum(_ZM_WIDTHS[:i]) + i for i in range(len(_ZM_WIDTHS)))
# The reserved tail (field 42) is trimmed or wider in some files; a record
# must reach at least the end of 原始交易订单号 (field 41).
_ZM_MIN_LENGTH = _ZM_STARTS[40] + _ZM_WIDTHS[40]

_ZM_CODE = 0
_ZM_TIME = 4
_ZM_AMOUNT = 6
_ZM_QUERY_ID = 9
_ZM_ORDER_ID = 11
_ZM_FEE = 15
_ZM_SETTLED = 16
_ZM_TXN_TYPE = 19
_ZM_TXN_SUB_TYPE = 20
_ZM_BIZ_TYPE = 21
_ZM_ORIG_QUERY_ID = 26
_ZM_MERCHANT = 27
_ZM_ORIG_ORDER_ID = 40

_ZM_READ = (
    _ZM_TIME,
    _ZM_AMOUNT,
    _ZM_QUERY_ID,
    _ZM_ORDER_ID,
    _ZM_TXN_TYPE,
    _ZM_ORIG_QUERY_ID,
    _ZM_ORIG_ORDER_ID,
)
_SPACE = ord(" ")
_ZM_KINDS: dict[str, Kind] = {"01": "payment", "04": "refund", "31": "refund"}
_ZM_MMDDHHMMSS = re.compile(r"[0-9]{10}")
# UnionPay's public test merchant number.
_UNIONPAY_MERCHANT = "777290058110048"


def _parse_unionpay(data: bytes, reference: date) -> list[BillLine]:
    """Read a ZM file: one fixed-width record per line, no header."""
    rows: list[BillLine] = []
    for number, raw in _raw_lines(data):
        try:
            fields = _zm_fields(raw)
            rows.append(_zm_line(fields, reference))
        except _RowError as fault:
            raise fault.at(number) from None
    return rows


def _zm_fields(raw: bytes) -> dict[int, str]:
    """Cut the fields we read out of a record, checking every separator.

    Only the read fields are decoded: a day's file holds hundreds of
    thousands of records, and the other 35 fields are never used.
    """
    if len(raw) < _ZM_MIN_LENGTH:
        raise _RowError(f"record is {len(raw)} bytes, under {_ZM_MIN_LENGTH}")

    for index in range(1, len(_ZM_STARTS)):
        gap = _ZM_STARTS[index] - 1
        if gap < len(raw) and raw[gap] != _SPACE:
            raise _RowError(f"no space before field {index + 1}")

    fields: dict[int, str] = {}
    for index in _ZM_READ:
        start = _ZM_STARTS[index]
        try:
            fields[index] = raw[start : start + _ZM_WIDTHS[index]].decode(_GBK_READ)
        except UnicodeDecodeError:
            raise _RowError(f"field {index + 1} is not GBK text") from None
        fields[index] = fields[index].strip()
    return fields


def _zm_line(fields: dict[int, str], reference: date) -> BillLine:
    """Turn one ZM record into a bill line."""
    kind = _ZM_KINDS.get(fields[_ZM_TXN_TYPE])
    if kind is None:
        raise _RowError("交易类型 is not 01, 04 or 31")

    try:
        amount = fen_text_to_fen(fields[_ZM_AMOUNT])
    except PoisonError:
        raise _RowError("交易金额 is not whole fen") from None
    if amount == 0:
        raise _RowError("交易金额 is zero")

    if kind == "payment":
        order_id = _required(fields[_ZM_ORDER_ID], "商户订单号")
        txn_id = _required(fields[_ZM_QUERY_ID], "查询流水号")
        refund_id = None
    else:
        order_id = _required(fields[_ZM_ORIG_ORDER_ID], "原始交易订单号")
        txn_id = _required(fields[_ZM_ORIG_QUERY_ID], "原交易查询流水号")
        refund_id = _required(fields[_ZM_ORDER_ID], "商户订单号")

    return _bill_line(
        Channel.UNIONPAY,
        order_id=order_id,
        channel_txn_id=txn_id,
        kind=kind,
        amount_fen=amount,
        refund_id=refund_id,
        occurred_at=_zm_moment(fields[_ZM_TIME], reference),
    )


def _zm_moment(text: str, reference: date) -> datetime:
    """Read MMDDhhmmss Beijing time in the year that puts it nearest the day."""
    if not _ZM_MMDDHHMMSS.fullmatch(text):
        raise _RowError("交易传输时间 is not MMDDhhmmss")

    month, day, hour, minute, second = (int(text[i : i + 2]) for i in range(0, 10, 2))
    candidates: list[datetime] = []
    for year in (reference.year - 1, reference.year, reference.year + 1):
        try:
            candidates.append(datetime(year, month, day, hour, minute, second))
        except ValueError:
            continue
    if not candidates:
        raise _RowError("交易传输时间 is not a real time")

    noon = datetime.combine(reference, time(12))
    nearest = min(candidates, key=lambda moment: abs(moment - noon))
    return nearest.replace(tzinfo=BEIJING).astimezone(UTC)


def _check_unionpay_widths(line: BillLine) -> None:
    """Refuse numbers wider than their ZM field."""
    order_ids = (line.order_id, line.refund_id or "")
    if any(len(value) > _ZM_WIDTHS[_ZM_ORDER_ID] for value in order_ids):
        raise ValueError("order or refund number is too wide for a ZM record")
    if len(line.channel_txn_id) > _ZM_WIDTHS[_ZM_QUERY_ID]:
        raise ValueError("channel_txn_id is too wide for a ZM record")


def _write_unionpay(day: date, lines: list[BillLine]) -> bytes:
    """Render the ZM file for ``day``: one record per line, CR LF."""
    return b"".join(_zm_record(line) + b"\r\n" for line in lines)


def _zm_record(line: BillLine) -> bytes:
    """One ZM record; fields outside the subset we model stay blank."""
    refund = line.kind == "refund"
    fields = [""] * len(_ZM_WIDTHS)
    fields[_ZM_CODE] = "S33" if refund else "S22"
    fields[_ZM_TIME] = line.occurred_at.astimezone(BEIJING).strftime("%m%d%H%M%S")
    fields[_ZM_AMOUNT] = f"{line.amount_fen:012d}"
    fields[_ZM_FEE] = "C" + "0" * 12
    fields[_ZM_SETTLED] = ("D" if refund else "C") + f"{line.amount_fen:012d}"
    fields[_ZM_TXN_TYPE] = "04" if refund else "01"
    fields[_ZM_TXN_SUB_TYPE] = "00" if refund else "01"
    fields[_ZM_BIZ_TYPE] = "000201"
    fields[_ZM_MERCHANT] = _UNIONPAY_MERCHANT

    if refund:
        refund_id = line.refund_id or ""
        fields[_ZM_QUERY_ID] = _stand_in(21, line.channel_txn_id, refund_id)
        fields[_ZM_ORDER_ID] = refund_id
        fields[_ZM_ORIG_QUERY_ID] = line.channel_txn_id
        fields[_ZM_ORIG_ORDER_ID] = line.order_id
    else:
        fields[_ZM_QUERY_ID] = line.channel_txn_id
        fields[_ZM_ORDER_ID] = line.order_id

    cells = (
        value.encode(_GBK_WRITE).ljust(width)
        for value, width in zip(fields, _ZM_WIDTHS, strict=True)
    )
    return b" ".join(cells)


# --- dispatch ---------------------------------------------------------------


def _bill_line(
    channel: str,
    *,
    order_id: str,
    channel_txn_id: str,
    kind: Kind,
    amount_fen: int,
    refund_id: str | None,
    occurred_at: datetime,
) -> BillLine:
    """Build a parsed line; a value the dataclass refuses is a row fault."""
    try:
        return BillLine(
            str(channel),
            order_id,
            channel_txn_id,
            kind,
            amount_fen,
            refund_id,
            occurred_at,
        )
    except ValueError:
        raise _RowError("row does not describe a payment or refund") from None


_PARSERS: dict[str, Callable[[bytes, date], list[BillLine]]] = {
    Channel.ALIPAY: _parse_alipay,
    Channel.WECHAT: _parse_wechat,
    Channel.UNIONPAY: _parse_unionpay,
}
_WRITERS: dict[str, Callable[[date, list[BillLine]], bytes]] = {
    Channel.ALIPAY: _write_alipay,
    Channel.WECHAT: _write_wechat,
    Channel.UNIONPAY: _write_unionpay,
}
