// Assertions on the page's reports, shared by the browser tests.
import { fail, pass } from './lib.mjs';

export function checkRegisterReport(browser, report, relay) {
  if (!report.ok) {
    fail(`${browser}: ${report.error}\nconsole: ${(report.console || []).join('\n')}` +
      (report.netlog ? `\nnet log: ${report.netlog}` : ''));
  }
  const a = report.assigned;
  const ipOk = Array.isArray(a.ip) && a.ip.length === 4 && a.ip[0] === 10 && a.ip[1] === 0 && a.ip[2] === 2 &&
    a.ip[3] >= 10 && a.ip[3] <= 254;
  if (!ipOk || JSON.stringify(a.gateway) !== '[10,0,2,2]' || JSON.stringify(a.netmask) !== '[255,255,255,0]') {
    fail(`${browser}: unexpected Assigned ${JSON.stringify(a)}`);
  }
  pass(`${browser}: session open (maxDatagramSize=${report.maxDatagramSize}), Assigned ${a.ip.join('.')}`);
  if (!(report.maxDatagramSize > 0)) fail(`${browser}: maxDatagramSize ${report.maxDatagramSize}: datagrams disabled`);
  if (report.acks !== 3) fail(`${browser}: ${report.acks} HeartbeatAcks, expected 3`);
  if (!report.refused.uni || !report.refused.bidi) fail(`${browser}: streams not refused: ${JSON.stringify(report.refused)}`);
  pass(`${browser}: uni and bidi streams refused (${report.refused.uni}/${report.refused.bidi}), 3 heartbeats acknowledged`);
  if (report.closed.closeCode !== 0) fail(`${browser}: closed with ${JSON.stringify(report.closed)}`);
  pass(`${browser}: session closed by the page, closed resolved ${JSON.stringify(report.closed)}`);
  // The relay must have seen the page's CLOSE_WEBTRANSPORT_SESSION and
  // ended the session itself (Chromium abandons the connection silently).
  return new Promise((res) => {
    const deadline = Date.now() + 3000;
    const iv = setInterval(() => {
      if (/msg="session closed" peer=\d+ code=0 reason="bye"/.test(relay.log)) {
        clearInterval(iv); pass(`${browser}: relay ended the session on the close capsule`); res();
      } else if (Date.now() > deadline) {
        clearInterval(iv); fail(`${browser}: relay never logged the session's end`);
      }
    }, 50);
  });
}

export function checkSwitchReport(browser, report) {
  if (!report.ok) {
    fail(`${browser} switch: ${report.error}\nconsole: ${(report.console || []).join('\n')}`);
  }
  if (report.senderGotOwnFrame) fail(`${browser} switch: the sender got its own broadcast back`);
  if (report.bigFrame !== 1400) fail(`${browser} switch: big frame ${report.bigFrame} bytes`);
  if (report.fullFrame !== 1514 || !/^chunks/.test(report.fullFrameArrivedAs)) {
    fail(`${browser} switch: 1514-byte frame: ${report.fullFrame} bytes as ${report.fullFrameArrivedAs}`);
  }
  pass(`${browser}: two sessions on one LAN: broadcast ARP and unicast reply crossed; ` +
    `a 1400-byte frame sent as 900-byte chunks arrived (${report.bigFrameArrivedAs}); ` +
    `a 1514-byte frame arrived as ${report.fullFrameArrivedAs}`);
}

export function checkGatewayReport(browser, report) {
  if (!report.ok) fail(`${browser} gateway: ${report.error}`);
  const mac = report.gatewayMac.map((x) => x.toString(16).padStart(2, '0')).join(':');
  if (mac !== '52:55:0a:00:02:02') fail(`${browser} gateway: ARP said ${mac}`);
  pass(`${browser}: ARP for 10.0.2.2 answered (${mac}), ping to the gateway answered in ${report.pingRttMs} ms`);
}
