// Tomcat reader: embedded Tomcat 10 (Debian libtomcat10-java), default connector
// settings. Tomcat's Mapper picks the servlet: exact mappings for the two paths,
// "/" (default servlet) for the rest. Before mapping, Tomcat itself strips ';' path
// parameters, percent-decodes, normalises '.', '..' and '//', and rejects %2F,
// '..' above the root and unprintable bytes with a 400 (no JSON then).
//
// getParameter / getParameterValues: query (decoded as URIEncoding=UTF-8) then, for
// POST with application/x-www-form-urlencoded only, the body (decoded with the
// request charset, ISO-8859-1 unless Content-Type names one); multipart is not
// parsed without @MultipartConfig. '&' is the only separator; getParameter returns
// the FIRST value. Tomcat has no query-only accessor, so "query" runs Tomcat's own
// Parameters parser over the raw query bytes, and "form" is getParameterValues minus
// those leading query values (Tomcat appends body values after query values).
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.Arrays;
import org.apache.catalina.Context;
import org.apache.catalina.connector.Connector;
import org.apache.catalina.connector.Request;
import org.apache.catalina.connector.Response;
import org.apache.catalina.startup.Tomcat;
import org.apache.catalina.valves.ValveBase;
import org.apache.tomcat.util.buf.MessageBytes;
import org.apache.tomcat.util.http.Parameters;

public class Reader {
    static final String[] GUARDED = {"client_id", "redirect_uri", "response_type", "scope", "state",
        "MedMij_geboortedatum", "response_mode", "request", "request_uri", "grant_type", "code",
        "code_verifier"};
    static Connector connector;

    /** Hands the servlet the raw query bytes (the servlet API only exposes a String). */
    static class RawQueryValve extends ValveBase {
        @Override
        public void invoke(Request req, Response resp) throws IOException, jakarta.servlet.ServletException {
            MessageBytes copy = MessageBytes.newInstance();
            copy.duplicate(req.getCoyoteRequest().queryString());
            req.setAttribute("reader.rawQuery", copy);
            getNext().invoke(req, resp);
        }
    }

    static class Echo extends HttpServlet {
        final String route;

        Echo(String route) {
            this.route = route;
        }

        @Override
        protected void service(HttpServletRequest req, HttpServletResponse resp) throws IOException {
            Parameters query = new Parameters();
            query.setQueryStringCharset(connector.getURICharset());
            query.setLimit(connector.getMaxParameterCount());
            query.setQuery((MessageBytes) req.getAttribute("reader.rawQuery"));
            query.handleQueryParameters();

            StringBuilder q = new StringBuilder(), f = new StringBuilder(), m = new StringBuilder();
            StringBuilder qa = new StringBuilder(), fa = new StringBuilder(), ma = new StringBuilder();
            for (String n : GUARDED) {
                String[] qv = orEmpty(query.getParameterValues(n));
                String[] mv = orEmpty(req.getParameterValues(n));
                String[] fv = Arrays.copyOfRange(mv, Math.min(qv.length, mv.length), mv.length);
                field(q, n, qv.length > 0 ? qv[0] : null);
                field(f, n, fv.length > 0 ? fv[0] : null);
                field(m, n, req.getParameter(n));
                list(qa, n, qv);
                list(fa, n, fv);
                list(ma, n, mv);
            }
            resp.setContentType("application/json");
            resp.setCharacterEncoding("UTF-8");
            resp.getWriter().write("{\"reader\":\"tomcat\",\"route\":\"" + route + "\",\"query\":{" + q
                + "},\"form\":{" + f + "},\"merged\":{" + m + "},\"all\":{\"query\":{" + qa
                + "},\"form\":{" + fa + "},\"merged\":{" + ma + "}}}");
        }
    }

    static String[] orEmpty(String[] v) {
        return v == null ? new String[0] : v;
    }

    static void field(StringBuilder sb, String name, String value) {
        if (sb.length() > 0) sb.append(',');
        sb.append(str(name)).append(':').append(value == null ? "null" : str(value));
    }

    static void list(StringBuilder sb, String name, String[] values) {
        if (values.length == 0) return;
        if (sb.length() > 0) sb.append(',');
        sb.append(str(name)).append(":[");
        for (int i = 0; i < values.length; i++) sb.append(i > 0 ? "," : "").append(str(values[i]));
        sb.append(']');
    }

    static String str(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') sb.append('\\').append(c);
            else if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
            else sb.append(c);
        }
        return sb.append('"').toString();
    }

    public static void main(String[] args) throws Exception {
        String authorize = System.getenv().getOrDefault("READER_AUTHORIZE_PATH", "/oauth2/authorize");
        String token = System.getenv().getOrDefault("READER_TOKEN_PATH", "/oauth2/token");
        Tomcat tomcat = new Tomcat();
        tomcat.setBaseDir(Files.createTempDirectory("reader-tomcat").toString());
        connector = new Connector(); // HTTP/1.1 NIO with Tomcat's defaults
        connector.setPort(0);
        connector.setProperty("address", "127.0.0.1");
        tomcat.setConnector(connector);

        Context ctx = tomcat.addContext("", null);
        ctx.getPipeline().addValve(new RawQueryValve());
        Tomcat.addServlet(ctx, "authorize", new Echo("authorize"));
        Tomcat.addServlet(ctx, "token", new Echo("token"));
        Tomcat.addServlet(ctx, "other", new Echo("other"));
        ctx.addServletMappingDecoded(authorize, "authorize");
        ctx.addServletMappingDecoded(token, "token");
        ctx.addServletMappingDecoded("/", "other");

        tomcat.start();
        System.out.println("LISTENING " + connector.getLocalPort());
        System.out.flush();
        tomcat.getServer().await();
    }
}
