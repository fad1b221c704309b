"""16550A UART: registers, output, paced input, IIR priorities, the IRQ line, FIFO, loopback."""

from __future__ import annotations

import pytest

from rdebug.machine.devices.uart import Uart
from tests.unit.devices.conftest import FakeContext

COM1 = 0x3F8
RBR, IER, IIR, LCR, MCR, LSR, MSR, SCR = (COM1 + offset for offset in (0, 1, 2, 3, 4, 5, 6, 7))
FCR = IIR
#: One character time at divisor 1: 10 bits at 115200 baud, rounded up.
CHAR_NS = 86_806


class Capture:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data


@pytest.fixture
def out() -> Capture:
    return Capture()


@pytest.fixture
def uart(ctx: FakeContext, out: Capture) -> Uart:
    device = Uart(ctx, base=COM1, irq=4, backend=out)
    device.reset()
    return device


def read(uart: Uart, port: int) -> int:
    return uart.io_read(port, 1)


def write(uart: Uart, port: int, value: int) -> None:
    uart.io_write(port, 1, value)


def test_idle_lsr_is_0x60(uart: Uart) -> None:
    assert read(uart, LSR) == 0x60
    assert read(uart, IIR) == 0x01  # no interrupt pending, FIFOs off


def test_names_and_ports(ctx: FakeContext) -> None:
    com2 = Uart(ctx, base=0x2F8, irq=3)
    assert (com2.name, com2.ports) == ("com2", (range(0x2F8, 0x300),))
    assert Uart(ctx, base=0x1000).name == "uart@0x1000"


@pytest.mark.parametrize(
    ("port", "written", "read_back"),
    [
        (IER, 0xFF, 0x0F),  # IER bits 7-4 read 0 on a 16550A
        (LCR, 0x1B, 0x1B),
        (MCR, 0xFF, 0x1F),
        (SCR, 0x5A, 0x5A),
        (LSR, 0x00, 0x60),  # writes ignored
    ],
)
def test_register_read_back(uart: Uart, port: int, written: int, read_back: int) -> None:
    write(uart, port, written)
    assert read(uart, port) == read_back


def test_divisor_latch_behind_dlab(uart: Uart) -> None:
    write(uart, LCR, 0x80)  # DLAB
    write(uart, RBR, 0x03)  # DLL
    write(uart, IER, 0x00)  # DLM
    assert (read(uart, RBR), read(uart, IER)) == (0x03, 0x00)
    write(uart, LCR, 0x03)
    assert uart.divisor == 3
    assert read(uart, IER) == 0x00  # IER untouched by the DLM write


def test_thr_goes_to_the_backend(uart: Uart, out: Capture) -> None:
    for byte in b"hi\n":
        write(uart, RBR, byte)
    assert bytes(out.data) == b"hi\n"
    assert read(uart, LSR) == 0x60  # sent at once


def test_no_reception_before_the_guest_enables_it(ctx: FakeContext, uart: Uart) -> None:
    uart.receive_host(b"ab")
    ctx.advance(100 * CHAR_NS)
    assert uart.lsr & 0x01 == 0
    assert not uart.rx_idle()
    assert ctx.deadline(uart) is None


def test_bytes_arrive_one_per_character_time(ctx: FakeContext, uart: Uart) -> None:
    write(uart, IER, 0x01)
    uart.receive_host(b"xyz")
    start = ctx.now
    for k, byte in enumerate(b"xyz", start=1):
        ctx.advance_to(start + k * CHAR_NS - 1)
        assert uart.lsr == 0x60
        ctx.advance(1)
        assert read(uart, LSR) == 0x61
        assert read(uart, RBR) == byte
    assert uart.rx_idle()


def test_reading_lsr_enables_reception(ctx: FakeContext, uart: Uart) -> None:
    uart.receive_host(b"q")
    ctx.advance(10 * CHAR_NS)
    assert read(uart, LSR) == 0x60
    ctx.advance(CHAR_NS)
    assert read(uart, LSR) == 0x61
    assert read(uart, RBR) == ord("q")


def test_never_an_overrun_without_fifo(ctx: FakeContext, uart: Uart) -> None:
    write(uart, IER, 0x01)
    uart.receive_host(b"abc")
    ctx.advance(50 * CHAR_NS)  # the guest is slow: only one byte may wait
    assert read(uart, LSR) == 0x61  # DR, no OE
    assert read(uart, RBR) == ord("a")
    ctx.advance(CHAR_NS - 1)
    assert uart.lsr == 0x60  # the next byte takes a character time from now
    ctx.advance(1)
    assert read(uart, LSR) == 0x61
    assert read(uart, RBR) == ord("b")


def test_fifo_fills_to_16_then_waits(ctx: FakeContext, uart: Uart) -> None:
    write(uart, FCR, 0x07)  # enable + clear, trigger 1
    write(uart, IER, 0x01)
    uart.receive_host(bytes(range(20)))
    ctx.advance(100 * CHAR_NS)
    assert read(uart, LSR) == 0x61
    data = []
    while read(uart, LSR) & 0x01:
        data.append(read(uart, RBR))
    assert data == list(range(16))
    ctx.advance(100 * CHAR_NS)
    while read(uart, LSR) & 0x01:
        data.append(read(uart, RBR))
    assert data == list(range(20))


def test_rx_interrupt_raises_and_drops_the_line(ctx: FakeContext, uart: Uart) -> None:
    write(uart, MCR, 0x00)  # some kernels write MCR=0: the IRQ is not gated on OUT2
    write(uart, IER, 0x01)
    uart.receive_host(b"k")
    ctx.advance(CHAR_NS)
    assert ctx.level(4)
    assert read(uart, IIR) == 0x04
    assert read(uart, RBR) == ord("k")
    assert not ctx.level(4)
    assert read(uart, IIR) == 0x01


def test_thr_empty_interrupt(ctx: FakeContext, uart: Uart) -> None:
    write(uart, IER, 0x02)  # enabling ETBEI with THR empty raises THRE at once
    assert ctx.level(4)
    assert read(uart, IIR) == 0x02
    assert not ctx.level(4)  # reading IIR cleared it: it was the source
    assert read(uart, IIR) == 0x01
    write(uart, RBR, ord("a"))  # a write empties THR again at once: a fresh edge
    assert ctx.level(4)
    ctx.irq_calls.clear()
    write(uart, RBR, ord("b"))  # while pending: the line dips and rises again
    assert [level for _, _, level in ctx.irq_calls] == [False, True]
    write(uart, IER, 0x00)
    assert not ctx.level(4)


def test_iir_priorities(ctx: FakeContext, uart: Uart) -> None:
    write(uart, MCR, 0x10)  # loopback, to make an overrun
    assert read(uart, MSR) == 0x0B  # CTS, DSR, DCD fell: DCTS, DDSR, DDCD (now cleared)
    write(uart, IER, 0x0F)
    assert read(uart, IIR) == 0x02  # THRE
    write(uart, RBR, 1)
    write(uart, RBR, 2)  # overruns the unread RBR
    assert read(uart, IIR) == 0x06  # line status first
    assert read(uart, LSR) == 0x63  # OE, DR; reading LSR clears OE
    assert read(uart, IIR) == 0x04  # then received data
    assert read(uart, RBR) == 2  # "destroying the previous character"
    assert read(uart, IIR) == 0x02  # then THRE
    assert read(uart, IIR) == 0x01
    write(uart, MCR, 0x12)  # RTS -> CTS in loopback: a modem status change
    assert read(uart, IIR) == 0x00  # modem status, the lowest
    assert read(uart, MSR) & 0x11 == 0x11  # CTS and DCTS
    assert read(uart, IIR) == 0x01


def test_loopback_probe(uart: Uart, out: Capture) -> None:
    # The "is there a UART" probe from the OSDev wiki, run by many hobby kernels.
    write(uart, MCR, 0x1E)
    write(uart, RBR, 0xAE)
    assert read(uart, RBR) == 0xAE
    assert out.data == b""
    write(uart, MCR, 0x0F)
    write(uart, RBR, 0x41)
    assert out.data == b"A"


def test_loopback_msr_for_linux_autoconfig(uart: Uart) -> None:
    write(uart, MCR, 0x1A)  # LOOP | OUT2 | RTS
    assert read(uart, MSR) & 0xF0 == 0x90  # DCD | CTS
    write(uart, MCR, 0x00)
    assert read(uart, MSR) & 0xF0 == 0xB0  # no modem attached: DCD, DSR, CTS


def test_fifo_trigger_level_and_iir_fifo_bits(ctx: FakeContext, uart: Uart) -> None:
    write(uart, FCR, 0x81)  # FIFO on, trigger 8
    assert read(uart, IIR) == 0xC1
    write(uart, IER, 0x01)
    uart.receive_host(b"12345678")
    ctx.advance(7 * CHAR_NS)
    assert read(uart, IIR) == 0xC1  # 7 bytes: below the trigger
    ctx.advance(CHAR_NS)
    assert read(uart, IIR) == 0xC4


def test_fifo_character_timeout(ctx: FakeContext, uart: Uart) -> None:
    write(uart, FCR, 0xC1)  # trigger 14
    write(uart, IER, 0x01)
    uart.receive_host(b"hi")
    ctx.advance(2 * CHAR_NS)
    assert not ctx.level(4)
    ctx.advance(4 * CHAR_NS - 1)
    assert not ctx.level(4)
    ctx.advance(1)  # four character times without activity
    assert read(uart, IIR) == 0xCC
    assert read(uart, RBR) == ord("h")
    assert read(uart, IIR) == 0xC1  # a read clears the timeout and restarts it
    ctx.advance(4 * CHAR_NS)
    assert read(uart, IIR) == 0xCC
    assert read(uart, RBR) == ord("i")
    ctx.advance(10 * CHAR_NS)
    assert read(uart, IIR) == 0xC1


def test_fcr_receiver_reset_and_fifo_toggle_clear(ctx: FakeContext, uart: Uart) -> None:
    write(uart, FCR, 0x01)
    write(uart, IER, 0x01)
    uart.receive_host(b"abc")
    ctx.advance(3 * CHAR_NS)
    write(uart, FCR, 0x03)  # receiver FIFO reset
    assert uart.lsr == 0x60
    uart.receive_host(b"d")
    ctx.advance(CHAR_NS)
    write(uart, FCR, 0x00)  # FIFOs off: cleared too
    assert uart.lsr == 0x60


def test_slower_baud_rate_paces_slower(ctx: FakeContext, uart: Uart) -> None:
    write(uart, LCR, 0x80)
    write(uart, RBR, 12)  # 9600 baud
    write(uart, LCR, 0x03)
    write(uart, IER, 0x01)
    uart.receive_host(b"z")
    ctx.advance(12 * CHAR_NS - 12)
    assert uart.lsr == 0x60
    ctx.advance(12)
    assert uart.lsr == 0x61


def test_reset_keeps_host_input(ctx: FakeContext, uart: Uart) -> None:
    write(uart, IER, 0x03)
    uart.receive_host(b"ab")
    uart.reset()
    assert not ctx.level(4)
    assert read(uart, IER) == 0x00
    assert not uart.rx_idle()
