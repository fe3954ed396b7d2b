// Uploads a file to castlog with tus-java-client, the way a Java program on a stock JDK does it:
// HttpURLConnection cannot send PATCH, so every chunk goes as POST with X-HTTP-Method-Override.
//
//   java -cp 'target/lib/*' JavaTusUpload.java <creation url> <user id> <file> <request bytes> [stop after bytes | resume url]
//
// With "stop after", it uploads until at least that many bytes are acknowledged and exits, as a
// program killed mid-upload would; with a resume URL it carries on from where the server says.
// Prints the upload URL and the final offset.
import io.tus.java.client.TusClient;
import io.tus.java.client.TusUpload;
import io.tus.java.client.TusUploader;
import java.io.File;
import java.net.URL;
import java.util.Map;

public class JavaTusUpload {
  public static void main(String[] args) throws Exception {
    TusClient client = new TusClient();
    client.setUploadCreationURL(new URL(args[0]));
    client.setHeaders(Map.of("X-UserId", args[1]));
    File file = new File(args[2]);
    TusUpload upload = new TusUpload(file);
    upload.setMetadata(Map.of("filename", file.getName(), "filetype", "video/mp4"));
    String extra = args.length > 4 ? args[4] : null;
    long stopAfter = extra != null && extra.matches("\\d+") ? Long.parseLong(extra) : Long.MAX_VALUE;
    TusUploader uploader = extra != null && !extra.matches("\\d+")
        ? client.beginOrResumeUploadFromURL(upload, new URL(extra))
        : client.createUpload(upload);
    uploader.setChunkSize(64 * 1024);
    uploader.setRequestPayloadSize(Integer.parseInt(args[3]));
    while (uploader.getOffset() < stopAfter && uploader.uploadChunk() > -1) {
      // each call sends up to one chunk inside the current request
    }
    uploader.finish(uploader.getOffset() >= upload.getSize());
    System.out.println(uploader.getUploadURL() + " " + uploader.getOffset());
  }
}
